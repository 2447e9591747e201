//! Placeholder: the filter is being written.
