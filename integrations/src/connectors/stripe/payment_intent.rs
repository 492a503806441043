//! A Stripe PaymentIntent built from the data of a catalog event (`invoice.sent`: the client
//! is asked to pay). The event's data (internal ids and amounts, never personal data):
//!
//! ```json
//! {"invoice_id": "inv_123", "currency": "USD", "doc_number": "1042",
//!  "amount_due": 1250.0, "lines": [{"amount": 1250.0, "description": "Charter KTEB-KPBI"}],
//!  "stripe_customer": "cus_…"}
//! ```
//!
//! The amount is `amount_due` when present, otherwise the sum of the lines, in the currency's
//! major unit; Stripe takes the smallest unit (cents; the same number for zero-decimal
//! currencies such as JPY). `metadata[hangar_invoice_id]` says where it came from.

use serde_json::{Map, Value, json};

use crate::sync::connector::OutboundPlan;

/// The event types the `payment_intents` data type takes.
pub const EVENT_TYPES: [&str; 1] = ["invoice.sent"];

/// Currencies Stripe counts in whole units (no minor unit).
const ZERO_DECIMAL: [&str; 16] = [
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv",
    "xaf", "xof", "xpf",
];

/// The PaymentIntent for `data`; an error names the field (`data.lines[0].amount`).
pub fn plan(data: &Value) -> Result<OutboundPlan, String> {
    let text = |field: &str| -> Result<Option<String>, String> {
        match data.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => Ok(Some(s.clone())),
            Some(_) => Err(format!(
                "data.{field} must be a non-empty string of at most 255 bytes"
            )),
        }
    };
    let invoice_id = text("invoice_id")?.ok_or("data.invoice_id is required")?;
    let currency = text("currency")?
        .filter(|c| c.len() == 3 && c.chars().all(|ch| ch.is_ascii_alphabetic()))
        .ok_or("data.currency is required: a three-letter ISO code")?
        .to_ascii_lowercase();
    let major = match data.get("amount_due") {
        None | Some(Value::Null) => {
            let lines = data
                .get("lines")
                .and_then(Value::as_array)
                .filter(|l| !l.is_empty())
                .ok_or("data.lines must be a non-empty array (or give data.amount_due)")?;
            let mut total = 0.0;
            for (i, line) in lines.iter().enumerate() {
                total += line
                    .get("amount")
                    .and_then(Value::as_f64)
                    .filter(|a| a.is_finite() && *a >= 0.0)
                    .ok_or_else(|| {
                        format!("data.lines[{i}].amount must be a number, zero or more")
                    })?;
            }
            total
        }
        Some(v) => v
            .as_f64()
            .filter(|a| a.is_finite() && *a >= 0.0)
            .ok_or("data.amount_due must be a number, zero or more")?,
    };
    let scale = if ZERO_DECIMAL.contains(&currency.as_str()) {
        1.0
    } else {
        100.0
    };
    let amount = (major * scale).round();
    if !(1.0..=99_999_999.0).contains(&amount) {
        return Err(format!(
            "data.amount_due (or the lines' total) must be between one minor unit and 99999999, got {amount} in {currency}"
        ));
    }
    let mut body = Map::new();
    body.insert("amount".into(), json!(amount as i64));
    body.insert("currency".into(), json!(currency));
    body.insert("metadata".into(), json!({"hangar_invoice_id": invoice_id}));
    if let Some(number) = text("doc_number")? {
        body.insert("description".into(), json!(format!("Invoice {number}")));
    }
    if let Some(customer) = text("stripe_customer")? {
        if !customer.starts_with("cus_") {
            return Err("data.stripe_customer must be a Stripe customer id (cus_…)".into());
        }
        body.insert("customer".into(), json!(customer));
    }
    Ok(OutboundPlan {
        object_type: "PaymentIntent",
        internal_id: invoice_id,
        body: Value::Object(body),
    })
}

/// `body` as Stripe's form encoding: nested objects as `key[sub]`, scalars as text.
pub fn form_of(body: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}[{k}]")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), v, out);
                }
            }
            Value::Null => {}
            Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", body, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_event_becomes_a_payment_intent_and_bad_data_names_the_field() {
        let p = plan(
            &json!({"invoice_id": "inv_1", "currency": "USD", "doc_number": "7",
            "lines": [{"amount": 10.5}, {"amount": 2.25}]}),
        )
        .unwrap();
        assert_eq!(p.internal_id, "inv_1");
        assert_eq!(p.body["amount"], 1275);
        assert_eq!(p.body["currency"], "usd");
        let form = form_of(&p.body);
        assert!(form.contains(&("metadata[hangar_invoice_id]".into(), "inv_1".into())));
        assert!(form.contains(&("description".into(), "Invoice 7".into())));
        let yen = plan(&json!({"invoice_id": "i", "currency": "jpy", "amount_due": 5000})).unwrap();
        assert_eq!(yen.body["amount"], 5000);
        for (data, field) in [
            (
                json!({"currency": "usd", "amount_due": 1}),
                "data.invoice_id",
            ),
            (json!({"invoice_id": "i", "amount_due": 1}), "data.currency"),
            (
                json!({"invoice_id": "i", "currency": "dollars", "amount_due": 1}),
                "data.currency",
            ),
            (json!({"invoice_id": "i", "currency": "usd"}), "data.lines"),
            (
                json!({"invoice_id": "i", "currency": "usd", "lines": [{"amount": "x"}]}),
                "data.lines[0].amount",
            ),
            (
                json!({"invoice_id": "i", "currency": "usd", "amount_due": 0}),
                "data.amount_due",
            ),
            (
                json!({"invoice_id": "i", "currency": "usd", "amount_due": 1, "stripe_customer": "bob"}),
                "data.stripe_customer",
            ),
        ] {
            let error = plan(&data).unwrap_err();
            assert!(error.contains(field), "{error} names {field}");
        }
    }
}
