"""Event-sourced order ledger for multi-user trading strategies."""
