//! The parts of the shim that need no container or containerd: the configuration (runtime
//! options, the config file, the capability policy) and the error type. The binary uses
//! them from here, and the fuzz targets call the very same parsers.

pub mod caps;
pub mod config;
pub mod error;
