//! How the binary ends: bad input and bad configuration exit with status 2 and one message;
//! anything else that fails exits with status 1.

use std::fmt;

/// An error that ends the process.
#[derive(Debug)]
pub struct Fatal {
    /// The exit status.
    pub status: u8,
    /// The one message printed on stderr.
    pub message: String,
}

impl Fatal {
    /// Bad configuration or bad input: status 2.
    pub fn config(message: impl Into<String>) -> Self {
        Fatal {
            status: 2,
            message: message.into(),
        }
    }

    /// A failure at run time: status 1.
    pub fn runtime(message: impl Into<String>) -> Self {
        Fatal {
            status: 1,
            message: message.into(),
        }
    }
}

impl fmt::Display for Fatal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::api::TokenError> for Fatal {
    fn from(error: crate::api::TokenError) -> Self {
        match error {
            crate::api::TokenError::Store(error) => Fatal::from(error),
            random @ crate::api::TokenError::Random(_) => Fatal::runtime(random.to_string()),
        }
    }
}

impl From<hangar_workers::store::StoreError> for Fatal {
    fn from(error: hangar_workers::store::StoreError) -> Self {
        use hangar_workers::store::StoreError;
        match error {
            StoreError::UnsupportedUrl(_)
            | StoreError::Connect { .. }
            | StoreError::Migrate(_)
            | StoreError::NoDatabase(_)
            | StoreError::NotMigrated { .. } => Fatal::config(error.to_string()),
            other => Fatal::runtime(other.to_string()),
        }
    }
}
