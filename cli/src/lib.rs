//! culvert, the command-line client of culvertd: its command line and exit statuses as a library, for the man
//! pages; the rest is the binary's.

pub mod args;
pub mod complete;
pub mod exit;
pub mod metrics;
