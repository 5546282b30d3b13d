//! TODO(skeleton): secret
