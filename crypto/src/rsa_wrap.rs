//! TODO(skeleton): rsa_wrap
