//! Fuzz targets for `halfclose`: what comes from the network.

pub mod wire;
