//! Building blocks shared by the model families: norms, linear projections, attention, MLPs,
//! RoPE tables and the decoder blocks made of them. Each has one forward, which runs on the
//! [`crate::Backend`] it is given.
pub(crate) mod attention;
pub(crate) mod block;
pub(crate) mod linear;
pub(crate) mod mlp;
pub(crate) mod norm;
pub(crate) mod rope;
