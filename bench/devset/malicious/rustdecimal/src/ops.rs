pub(crate) mod decimal;
