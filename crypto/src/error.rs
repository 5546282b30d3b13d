//! TODO(skeleton): error
