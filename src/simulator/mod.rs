//! QRS simulator
