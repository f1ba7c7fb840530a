use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Bid,
    Ask,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Level {
    pub price: f64,
    pub size: f64,
}

/// Price levels keyed by price in ticks.
#[derive(Default, Debug)]
pub struct OrderBook {
    bids: BTreeMap<u64, f64>,
    asks: BTreeMap<u64, f64>,
    tick: f64,
}

impl OrderBook {
    pub fn new(tick: f64) -> Self {
        OrderBook { tick, ..Default::default() }
    }

    fn key(&self, price: f64) -> u64 {
        (price / self.tick).round() as u64
    }

    pub fn update(&mut self, side: Side, price: f64, size: f64) {
        let k = self.key(price);
        let book = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        if size <= 0.0 {
            book.remove(&k);
        } else {
            book.insert(k, size);
        }
    }

    pub fn best_bid(&self) -> Option<Level> {
        self.bids.iter().next_back().map(|(k, s)| Level { price: *k as f64 * self.tick, size: *s })
    }

    pub fn best_ask(&self) -> Option<Level> {
        self.asks.iter().next().map(|(k, s)| Level { price: *k as f64 * self.tick, size: *s })
    }

    pub fn spread(&self) -> Option<f64> {
        Some(self.best_ask()?.price - self.best_bid()?.price)
    }
}
