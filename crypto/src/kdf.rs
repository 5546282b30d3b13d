//! TODO(skeleton): kdf
