//! `stepwise queues`, `locks` and `runs explain` through the CLI.
