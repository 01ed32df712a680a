//! Ports: the traits the service does its I/O through, each with the default-build adapter.
//! (The event store port lives in [`crate::store`], next to its adapters.)
//!
//! All async traits use native `impl Future + Send` (no `async-trait`) and have blanket impls for
//! `&T`, `Arc<T>` and `Box<T>`, so an embedder can pass whichever it holds.

pub(crate) mod authorizer;
pub(crate) mod clock;
pub(crate) mod notifier;
pub(crate) mod random;
pub(crate) mod relying_party;

/// Implements a port for `&T`, `Arc<T>` and `Box<T>` by forwarding every method.
macro_rules! forward_port {
    ($trait:ident { $(fn $method:ident(&self $(, $arg:ident: $ty:ty)*) $(-> $ret:ty)?;)* }) => {
        impl<T: $trait + ?Sized> $trait for &T {
            $(fn $method(&self $(, $arg: $ty)*) $(-> $ret)? { (**self).$method($($arg),*) })*
        }
        impl<T: $trait + ?Sized> $trait for std::sync::Arc<T> {
            $(fn $method(&self $(, $arg: $ty)*) $(-> $ret)? { (**self).$method($($arg),*) })*
        }
        impl<T: $trait + ?Sized> $trait for Box<T> {
            $(fn $method(&self $(, $arg: $ty)*) $(-> $ret)? { (**self).$method($($arg),*) })*
        }
    };
}
pub(crate) use forward_port;
