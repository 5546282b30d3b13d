//! TODO(skeleton): seal
