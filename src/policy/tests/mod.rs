//! The decision engine driven through a policy, as administrators write it: the spec is validated into the
//! engine's rules here, so these tests live with the validation rather than in the engine crate.

mod plan;
mod plan_props;
