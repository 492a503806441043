//! A QuickBooks invoice built from the data of a catalog event: `invoice.created` (a new
//! invoice) and `invoice.sent` (the invoice as the client received it: an invoice pushed
//! before is updated, with its `SyncToken`). The catalog (the webhook reference in
//! `shared/seeds/`) has no `invoice.updated`; `invoice.paid` is a QuickBooks payment, which
//! comes *in*. The event's data (internal ids, amounts, never personal data), the same for
//! both:
//!
//! ```json
//! {"invoice_id": "inv_123", "customer_ref": "58", "due_date": "2026-12-31",
//!  "doc_number": "1042", "currency": "USD",
//!  "lines": [{"amount": 1250.0, "description": "Charter KTEB-KPBI", "item_ref": "1"}]}
//! ```
//!
//! `customer_ref` and `item_ref` are QuickBooks ids the main app keeps; `item_ref` defaults
//! to `1` (QuickBooks' "Services" item). The body carries `PrivateNote: "hangar:<invoice_id>"`
//! so a person in QuickBooks sees where it came from.

use serde_json::{Map, Value, json};

use crate::sync::connector::OutboundPlan;

/// The event types the `invoices` data type takes.
pub const EVENT_TYPES: [&str; 2] = ["invoice.created", "invoice.sent"];

/// The invoice for `data`; an error names the field (`data.lines[0].amount`).
pub fn plan(data: &Value) -> Result<OutboundPlan, String> {
    let text = |field: &str| -> Result<Option<String>, String> {
        match data.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) if !s.trim().is_empty() && s.len() <= 255 => Ok(Some(s.clone())),
            Some(Value::Number(n)) if field.ends_with("_ref") => Ok(Some(n.to_string())),
            Some(_) => Err(format!(
                "data.{field} must be a non-empty string of at most 255 bytes"
            )),
        }
    };
    let invoice_id = text("invoice_id")?.ok_or("data.invoice_id is required")?;
    let customer = text("customer_ref")?
        .ok_or("data.customer_ref is required (the QuickBooks customer id)")?;
    let lines = data
        .get("lines")
        .and_then(Value::as_array)
        .filter(|l| !l.is_empty())
        .ok_or("data.lines must be a non-empty array")?;
    let mut qbo_lines = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        let amount = line
            .get("amount")
            .and_then(Value::as_f64)
            .filter(|a| a.is_finite() && *a >= 0.0)
            .ok_or_else(|| format!("data.lines[{i}].amount must be a number, zero or more"))?;
        let item = match line.get("item_ref") {
            None | Some(Value::Null) => "1".to_owned(),
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            Some(_) => {
                return Err(format!(
                    "data.lines[{i}].item_ref must be a QuickBooks item id"
                ));
            }
        };
        let mut q = json!({
            "Amount": amount,
            "DetailType": "SalesItemLineDetail",
            "SalesItemLineDetail": {"ItemRef": {"value": item}},
        });
        match line.get("description") {
            None | Some(Value::Null) => {}
            Some(Value::String(d)) => q["Description"] = json!(d),
            Some(_) => return Err(format!("data.lines[{i}].description must be a string")),
        }
        qbo_lines.push(q);
    }
    let mut body = Map::new();
    body.insert("CustomerRef".into(), json!({"value": customer}));
    body.insert("Line".into(), Value::Array(qbo_lines));
    body.insert("PrivateNote".into(), json!(format!("hangar:{invoice_id}")));
    if let Some(due) = text("due_date")? {
        if chrono::NaiveDate::parse_from_str(&due, "%Y-%m-%d").is_err() {
            return Err("data.due_date must be a date, YYYY-MM-DD".into());
        }
        body.insert("DueDate".into(), json!(due));
    }
    if let Some(number) = text("doc_number")? {
        body.insert("DocNumber".into(), json!(number));
    }
    if let Some(currency) = text("currency")? {
        body.insert("CurrencyRef".into(), json!({"value": currency}));
    }
    Ok(OutboundPlan {
        object_type: "Invoice",
        internal_id: invoice_id,
        body: Value::Object(body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invoice_event_becomes_a_quickbooks_invoice_and_bad_data_names_the_field() {
        let plan = plan(
            &json!({"invoice_id": "inv_1", "customer_ref": 58, "due_date": "2026-12-31",
            "lines": [{"amount": 10.5, "description": "fuel"}]}),
        )
        .unwrap();
        assert_eq!(plan.internal_id, "inv_1");
        assert_eq!(plan.body["CustomerRef"]["value"], "58");
        assert_eq!(plan.body["Line"][0]["Amount"], 10.5);
        assert_eq!(
            plan.body["Line"][0]["SalesItemLineDetail"]["ItemRef"]["value"],
            "1"
        );
        assert_eq!(plan.body["DueDate"], "2026-12-31");
        for (data, field) in [
            (
                json!({"customer_ref": "1", "lines": [{"amount": 1}]}),
                "data.invoice_id",
            ),
            (
                json!({"invoice_id": "i", "lines": [{"amount": 1}]}),
                "data.customer_ref",
            ),
            (
                json!({"invoice_id": "i", "customer_ref": "1", "lines": []}),
                "data.lines",
            ),
            (
                json!({"invoice_id": "i", "customer_ref": "1", "lines": [{"amount": "x"}]}),
                "data.lines[0].amount",
            ),
            (
                json!({"invoice_id": "i", "customer_ref": "1", "lines": [{"amount": 1}], "due_date": "soon"}),
                "data.due_date",
            ),
        ] {
            let error = super::plan(&data).unwrap_err();
            assert!(error.contains(field), "{error} names {field}");
        }
    }
}
