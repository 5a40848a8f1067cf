//! What the two firmware images (`firmware/cortex-m-qemu`, `firmware/embassy-qemu`) share: the
//! LM3S6965's Ethernet MAC, the 64 KiB file and the sink that checks it, and the stack-peak
//! probe. Each image depends on this crate by path, with the `server` and `client` features it
//! needs.

#![no_std]

pub mod enet;
pub mod payload;
pub mod stack;
