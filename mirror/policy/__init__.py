"""Pure policy decisions: typed data in, a Decision out. No I/O anywhere below here."""
