//! Flow control with real worker processes: concurrency keys and resource locks.
