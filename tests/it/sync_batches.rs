//! A page applied in batches (one statement per kind of write for the whole page), on both
//! backends, through the store as the sync run calls it: new, changed and unchanged records
//! of one page land as the one-record rules say, the changes come back numbered in the
//! page's order, a full scan marks every mapped record of its page seen, and a page that
//! brings the same record twice applies it twice in order (created, then updated).

use hangar_integrations::store::sync_pages::PageTarget;
use hangar_integrations::sync::{Cursor, InboundRecord, Position, RecordClass, Scan};
use serde_json::json;

use crate::support::Backend;
use crate::sync_support::{INTEGRATION, SyncWorld, WORKSPACE};

fn payment(id: &str, amount: i64, minute: i64) -> (InboundRecord, RecordClass) {
    (
        InboundRecord {
            object_type: "Payment".into(),
            external_id: id.into(),
            modified_at: chrono::DateTime::from_timestamp(1_790_000_000 + minute * 60, 0).unwrap(),
            payload: json!({"Id": id, "TotalAmt": amount, "note": "é \"quoted\" 1.50"}),
            concurrency_token: Some(format!("{amount}")),
            deleted: false,
        },
        RecordClass::Ordinary,
    )
}

fn at(minute: i64) -> Position {
    Position {
        cursor: Some(Cursor {
            at: chrono::DateTime::from_timestamp(1_790_000_000 + minute * 60, 0).unwrap(),
            id: String::new(),
        }),
        scan: None,
    }
}

async fn pages_apply_in_batches(backend: Backend) {
    let w = SyncWorld::new(backend, None).await;
    let target = PageTarget {
        run_id: "run_batches".into(),
        integration_id: INTEGRATION.into(),
        workspace_id: WORKSPACE.into(),
        provider: "quickbooks".into(),
        data_type: "payments".into(),
    };
    let first = [
        payment("1", 10, 1),
        payment("2", 20, 2),
        payment("3", 30, 3),
    ];
    let applied = w
        .store
        .apply_page(&target, &first, &at(3), None)
        .await
        .expect("first page");
    assert_eq!(
        (applied.counts.read, applied.counts.created),
        (3, 3),
        "{applied:?}"
    );
    let order: Vec<(&str, &str)> = applied
        .changes
        .iter()
        .map(|c| (c.external_id.as_str(), c.action.as_str()))
        .collect();
    assert_eq!(
        order,
        [("1", "created"), ("2", "created"), ("3", "created")]
    );
    assert!(applied.changes.windows(2).all(|p| p[0].id < p[1].id));

    // 1 unchanged, 2 changed at the provider, 4 new.
    let second = [
        payment("1", 10, 1),
        payment("2", 25, 4),
        payment("4", 40, 5),
    ];
    let applied = w
        .store
        .apply_page(&target, &second, &at(5), None)
        .await
        .expect("second page");
    let c = applied.counts;
    assert_eq!(
        (c.read, c.created, c.updated, c.skipped),
        (3, 1, 1, 1),
        "{c:?}"
    );
    let order: Vec<(&str, &str)> = applied
        .changes
        .iter()
        .map(|c| (c.external_id.as_str(), c.action.as_str()))
        .collect();
    assert_eq!(order, [("2", "updated"), ("4", "created")]);
    assert!(applied.changes.windows(2).all(|p| p[0].id < p[1].id));
    let two = w
        .store
        .mapped_payload(INTEGRATION, "Payment", "2")
        .await
        .expect("read")
        .expect("mapped");
    assert_eq!(two, second[1].0.payload, "the payload is stored exactly");
    // What the API serves of the run: the same changes, in the same order.
    let listed = w.store.changes("run_batches", 0, 100).await.expect("list");
    let listed: Vec<(&str, &str)> = listed
        .iter()
        .map(|c| (c.external_id.as_str(), c.action.as_str()))
        .collect();
    assert_eq!(listed.len(), 5);
    assert_eq!(&listed[3..], [("2", "updated"), ("4", "created")]);

    // The same record twice in one page: created, then updated, in order.
    let twice = [payment("5", 50, 6), payment("5", 55, 7)];
    let applied = w
        .store
        .apply_page(&target, &twice, &at(7), None)
        .await
        .expect("a record twice");
    let order: Vec<&str> = applied.changes.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(order, ["created", "updated"]);
    let five = w
        .store
        .mapped_payload(INTEGRATION, "Payment", "5")
        .await
        .expect("read")
        .expect("mapped");
    assert_eq!(five["TotalAmt"], 55);

    // A full scan's page marks every mapped record of it seen, changed or not.
    let scan = Position {
        cursor: at(7).cursor,
        scan: Some(Scan {
            position: "page-2".into(),
            started_at: chrono::Utc::now(),
            id: "scan_batches".into(),
        }),
    };
    let page = [
        payment("1", 10, 1),
        payment("2", 26, 8),
        payment("6", 60, 9),
    ];
    w.store
        .apply_page(&target, &page, &scan, Some("scan_batches"))
        .await
        .expect("scan page");
    let seen = w
        .count("SELECT count(*) FROM hangar_sync_mappings WHERE seen_scan = 'scan_batches'")
        .await;
    assert_eq!(seen, 3, "1 (unchanged), 2 (updated), 6 (new)");
    assert_eq!(
        w.count("SELECT count(*) FROM hangar_sync_mappings").await,
        6
    );
}

#[tokio::test]
async fn pages_apply_in_batches_postgres() {
    pages_apply_in_batches(Backend::Postgres).await;
}

#[tokio::test]
async fn pages_apply_in_batches_sqlite() {
    pages_apply_in_batches(Backend::Sqlite).await;
}
