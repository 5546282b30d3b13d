//! TODO(skeleton): ekcd
