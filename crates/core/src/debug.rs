//! `Debug` for types that must not print everything they hold.

/// `debug_fields!(Type: a, b)` implements `Debug` for `Type` showing only the fields `a` and
/// `b`, and `..` for the rest: for services, adapters and requests that hold clients, caches,
/// secrets or trait objects.
#[macro_export]
macro_rules! debug_fields {
    ($name:ident: $($field:ident),+ $(,)?) => {
        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.debug_struct(stringify!($name))
                    $(.field(stringify!($field), &self.$field))*
                    .finish_non_exhaustive()
            }
        }
    };
}
