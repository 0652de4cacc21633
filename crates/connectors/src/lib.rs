//! Destination wire formats (one module per vendor).
