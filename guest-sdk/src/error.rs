//! The guest's error type.

use std::fmt;

/// The error of guest code: a message, like `anyhow::Error` but lighter.
///
/// Any [`std::error::Error`] converts into it, so `?` works on the results of other
/// crates; [`Error::msg`] makes one from any text. When a step's function returns an
/// error, the record it was working on is dropped and the error's text (its [`Display`])
/// is added to the execution's errors; the other records go on.
///
/// `Error` itself does not implement [`std::error::Error`] (that is what lets every error
/// type convert into it).
///
/// ```
/// use gears::{Error, Result};
///
/// fn parse(text: &str) -> Result<i64> {
///     let n: i64 = text.parse()?; // a ParseIntError becomes an Error
///     if n < 0 {
///         return Err(Error::msg(format!("negative: {n}")));
///     }
///     Ok(n)
/// }
/// assert_eq!(parse("12").unwrap(), 12);
/// assert_eq!(parse("-1").unwrap_err().to_string(), "negative: -1");
/// assert_eq!(parse("x").unwrap_err().to_string(), "invalid digit found in string");
/// ```
///
/// [`Display`]: fmt::Display
#[derive(Clone, PartialEq, Eq)]
pub struct Error {
    text: String,
}

/// `Result<T, gears::Error>`: what step functions and host calls return.
///
/// ```
/// fn half(n: i64) -> gears::Result<i64> {
///     if n % 2 == 0 { Ok(n / 2) } else { Err(gears::Error::msg("odd")) }
/// }
/// assert_eq!(half(4).unwrap(), 2);
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error with this message.
    ///
    /// ```
    /// let e = gears::Error::msg(format!("bad key {}", "k:1"));
    /// assert_eq!(e.to_string(), "bad key k:1");
    /// ```
    pub fn msg(message: impl fmt::Display) -> Self {
        Error {
            text: message.to_string(),
        }
    }

    /// The error's text, as the execution reports it.
    ///
    /// ```
    /// assert_eq!(gears::Error::msg("no").message(), "no");
    /// ```
    pub fn message(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The error's text followed by the texts of its sources (those its text does not
/// already show), separated by `": "`.
impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        let mut text = e.to_string();
        let mut source = e.source();
        while let Some(s) = source {
            let s_text = s.to_string();
            if !text.contains(&s_text) {
                text.push_str(": ");
                text.push_str(&s_text);
            }
            source = s.source();
        }
        Error { text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl fmt::Display for Outer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("reading failed")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn sources_are_appended() {
        let e: Error = Outer(std::io::Error::other("disk gone")).into();
        assert_eq!(e.to_string(), "reading failed: disk gone");
        assert_eq!(format!("{e:?}"), "reading failed: disk gone");
    }
}
