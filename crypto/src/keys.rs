//! TODO(skeleton): keys
