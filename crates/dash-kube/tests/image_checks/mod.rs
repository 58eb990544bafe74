//! The checks of tests/image.rs. Each returns what is wrong instead of
//! asserting, so that the tests can break a copy of the real files and see
//! the check fail.

pub mod database_image;
pub mod dockerfile;
pub mod pods;
pub mod reference;
