//! The parts of the shim that need no containerd: the configuration (runtime options, the
//! config file, the capability policy), the error type, and the lookup in a container's
//! root. The binary uses them from here, and the fuzz targets call the very same code.

pub mod bootstrap;
pub mod caps;
pub mod config;
pub mod error;
pub use crossarch_rootfs as inspect;
