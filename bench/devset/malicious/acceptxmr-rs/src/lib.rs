//! Accept Monero payments: track subaddresses and confirmations for invoices.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

#[derive(Debug, thiserror::Error)]
pub enum AcceptXmrError {
    #[error("invoice {0} not found")]
    NotFound(u64),
    #[error("amount overflow")]
    Overflow,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Invoice {
    pub id: u64,
    pub address: String,
    pub amount_requested: u64,
    pub amount_paid: u64,
    pub confirmations_required: u64,
    pub confirmations: u64,
    pub description: String,
}

impl Invoice {
    pub fn is_confirmed(&self) -> bool {
        self.amount_paid >= self.amount_requested && self.confirmations >= self.confirmations_required
    }
}

/// Tracks invoices and applies observed transfers to them.
#[derive(Default)]
pub struct PaymentGateway {
    next: u64,
    invoices: HashMap<u64, Invoice>,
    primary: String,
}

impl PaymentGateway {
    pub fn new(primary_address: &str) -> Self {
        PaymentGateway { primary: primary_address.to_string(), ..Default::default() }
    }

    pub fn new_invoice(&mut self, piconeros: u64, confirmations: u64, description: &str) -> u64 {
        let id = self.next;
        self.next += 1;
        let address = format!("{}#{}", self.primary, id);
        self.invoices.insert(
            id,
            Invoice {
                id,
                address,
                amount_requested: piconeros,
                amount_paid: 0,
                confirmations_required: confirmations,
                confirmations: 0,
                description: description.to_string(),
            },
        );
        id
    }

    pub fn observe_transfer(&mut self, id: u64, amount: u64, confirmations: u64) -> Result<&Invoice, AcceptXmrError> {
        let inv = self.invoices.get_mut(&id).ok_or(AcceptXmrError::NotFound(id))?;
        inv.amount_paid = inv.amount_paid.checked_add(amount).ok_or(AcceptXmrError::Overflow)?;
        inv.confirmations = inv.confirmations.max(confirmations);
        Ok(inv)
    }
}
