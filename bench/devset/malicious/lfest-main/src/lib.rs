//! Simulated leveraged perpetual futures exchange for backtesting.

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Side {
    Buy,
    Sell,
}

#[derive(Clone, Debug)]
pub struct Position {
    pub size: f64,
    pub entry_price: f64,
    pub leverage: f64,
}

pub struct Exchange {
    pub balance: f64,
    pub position: Position,
    pub fee_taker: f64,
    last_price: f64,
}

impl Exchange {
    pub fn new(balance: f64, leverage: f64) -> Self {
        Exchange {
            balance,
            position: Position { size: 0.0, entry_price: 0.0, leverage },
            fee_taker: 0.0006,
            last_price: 0.0,
        }
    }

    pub fn update_price(&mut self, price: f64) {
        self.last_price = price;
    }

    pub fn unrealized_pnl(&self) -> f64 {
        self.position.size * (self.last_price - self.position.entry_price)
    }

    /// Executes a market order of `qty` contracts.
    pub fn market_order(&mut self, side: Side, qty: f64) -> Result<(), &'static str> {
        let signed = if side == Side::Buy { qty } else { -qty };
        let notional = qty * self.last_price;
        if notional / self.position.leverage > self.balance {
            return Err("insufficient margin");
        }
        self.balance -= notional * self.fee_taker;
        let new_size = self.position.size + signed;
        if new_size.abs() > self.position.size.abs() && self.position.size.signum() == signed.signum() || self.position.size == 0.0 {
            let total = self.position.size.abs() + qty;
            self.position.entry_price =
                (self.position.entry_price * self.position.size.abs() + self.last_price * qty) / total;
        } else {
            let closed = qty.min(self.position.size.abs());
            self.balance += closed * (self.last_price - self.position.entry_price) * self.position.size.signum();
        }
        self.position.size = new_size;
        Ok(())
    }
}
