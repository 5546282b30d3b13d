//! TODO(skeleton): aead
