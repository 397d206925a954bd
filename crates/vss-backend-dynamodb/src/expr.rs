//! Expressions with placeholders for every attribute name and value, so no
//! name can clash with DynamoDB's reserved words and no value is spliced in.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;

/// Names and values of the expressions of one request.
#[derive(Debug, Default)]
pub(crate) struct Placeholders {
    names: HashMap<String, String>,
    values: HashMap<String, AttributeValue>,
}

impl Placeholders {
    /// `#name`, registered for `attribute`.
    pub fn name(&mut self, attribute: &str) -> String {
        let placeholder = format!("#{attribute}");
        self.names
            .entry(placeholder.clone())
            .or_insert_with(|| attribute.to_string());
        placeholder
    }

    /// A fresh `:vN` bound to `value`.
    pub fn value(&mut self, value: AttributeValue) -> String {
        let placeholder = format!(":v{}", self.values.len());
        self.values.insert(placeholder.clone(), value);
        placeholder
    }

    /// A projection expression of `attributes`, each by its placeholder.
    pub fn projection(&mut self, attributes: &[&str]) -> String {
        attributes
            .iter()
            .map(|a| self.name(a))
            .collect::<Vec<_>>()
            .join(", ")
    }

    pub fn number(&mut self, n: i64) -> String {
        self.value(num(n))
    }

    pub fn string(&mut self, s: &str) -> String {
        self.value(AttributeValue::S(s.to_string()))
    }

    /// The names, or `None` when there are none (DynamoDB refuses empty maps).
    pub fn names(&self) -> Option<HashMap<String, String>> {
        (!self.names.is_empty()).then(|| self.names.clone())
    }

    /// The values, or `None` when there are none.
    pub fn values(&self) -> Option<HashMap<String, AttributeValue>> {
        (!self.values.is_empty()).then(|| self.values.clone())
    }
}

/// A number attribute.
pub(crate) fn num(n: impl std::fmt::Display) -> AttributeValue {
    AttributeValue::N(n.to_string())
}

/// A binary attribute.
pub(crate) fn bin(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes.to_vec()))
}

/// Reads a number attribute; `Ok(None)` when absent, an error when malformed.
pub(crate) fn get_num<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
) -> Result<Option<T>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(n)) => n
            .parse()
            .map(Some)
            .map_err(|_| format!("attribute `{name}` holds a malformed number")),
        Some(_) => Err(format!("attribute `{name}` is not a number")),
    }
}

/// Reads a string attribute; `Ok(None)` when absent.
pub(crate) fn get_str<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &str,
) -> Result<Option<&'a str>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(s)) => Ok(Some(s)),
        Some(_) => Err(format!("attribute `{name}` is not a string")),
    }
}

/// Reads a binary attribute; `Ok(None)` when absent.
pub(crate) fn get_bin<'a>(
    item: &'a HashMap<String, AttributeValue>,
    name: &str,
) -> Result<Option<&'a [u8]>, String> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::B(b)) => Ok(Some(b.as_ref())),
        Some(_) => Err(format!("attribute `{name}` is not binary")),
    }
}
