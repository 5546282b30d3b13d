//! TODO(skeleton): hpke_wrap
