//! The behaviour every [`Ledger`] must have, run against each implementation
//! by [`ledger_suite!`]: the embedded ledger and the Redis one (against a real
//! redis-server).

use std::sync::Arc;
use std::time::Duration;

use super::{
    BudgetKind, Budgets, CallId, Exceeded, Ledger, Owner, Reservation, Reserved, Spent, UsageCounts,
};
use crate::cost::bucket::Limit;
use crate::cost::money::Usd;
use crate::cost::period::{Periods, periods};
use crate::ids::{SessionId, TenantId, TurnId};

/// A ledger under test, with whatever keeps its backing alive.
pub struct Subject {
    pub ledger: Arc<dyn Ledger>,
    pub _backing: Box<dyn std::any::Any + Send>,
}

/// 2026-12-01T12:00:00Z.
pub const NOON: i64 = 1_796_126_400_000;

pub fn tenant(name: &str) -> TenantId {
    TenantId::try_from(name.to_owned()).unwrap()
}

pub fn day_periods(now_ms: i64) -> Periods {
    periods(now_ms, &jiff::tz::TimeZone::UTC)
}

/// A reservation of `tokens` and `nanos` by key `k` of tenant `acme`.
pub fn reservation(session: &SessionId, call: u32, tokens: u64, nanos: u64) -> Reservation {
    Reservation {
        tenant: tenant("acme"),
        key: "k".into(),
        session: session.clone(),
        id: CallId {
            turn: TurnId::generate(),
            call,
        },
        periods: day_periods(NOON),
        now_ms: NOON,
        expires_ms: NOON + 60_000,
        session_ttl_ms: 3_600_000,
        usage_retention_ms: 90 * 86_400_000,
        tokens,
        cost: Usd::from_nanos(nanos),
        tenant_budgets: Budgets::default(),
        key_budgets: Budgets::default(),
        tenant_tokens: None,
        key_tokens: None,
    }
}

pub fn budgets(kind: BudgetKind, limit: u64) -> Budgets {
    let mut budgets = Budgets::default();
    budgets.limits[kind as usize] = Some(limit);
    budgets
}

pub fn spent(tokens_in: u64, tokens_out: u64, nanos: u64) -> Spent {
    Spent {
        route: "chat".into(),
        model: "gpt".into(),
        input_tokens: tokens_in,
        cached_tokens: 0,
        output_tokens: tokens_out,
        cost: Usd::from_nanos(nanos),
        estimated: false,
        reached: true,
    }
}

fn granted(answer: &Reserved) -> bool {
    matches!(answer, Reserved::Granted(_))
}

async fn spent_now(ledger: &dyn Ledger, owner: &Owner, kind: BudgetKind) -> (u64, u64) {
    let states = ledger
        .budgets(&tenant("acme"), owner, &day_periods(NOON))
        .await
        .unwrap();
    let state = states.into_iter().find(|s| s.kind == kind).unwrap();
    (state.spent, state.reserved)
}

pub async fn over_budget_reserves_nothing(subject: Subject) {
    let ledger = &*subject.ledger;
    let session = SessionId::generate();
    let mut first = reservation(&session, 1, 100, 600);
    first.tenant_budgets = budgets(BudgetKind::UsdDay, 1_000);
    assert!(granted(&ledger.reserve(&first).await.unwrap()));
    let mut second = reservation(&session, 2, 100, 600);
    second.tenant_budgets = first.tenant_budgets;
    assert_eq!(
        ledger.reserve(&second).await.unwrap(),
        Reserved::OverBudget(Exceeded {
            owner: Owner::Tenant,
            kind: BudgetKind::UsdDay,
            limit: 1_000,
            used: 600,
        })
    );
    assert_eq!(
        spent_now(ledger, &Owner::Tenant, BudgetKind::UsdDay).await,
        (0, 600)
    );
    // Settled to less than reserved: the rest is free again.
    ledger.settle(&first, &spent(10, 5, 200)).await.unwrap();
    assert_eq!(
        spent_now(ledger, &Owner::Tenant, BudgetKind::UsdDay).await,
        (200, 0)
    );
    assert!(granted(&ledger.reserve(&second).await.unwrap()));
}

pub async fn settling_twice_charges_once(subject: Subject) {
    let ledger = &*subject.ledger;
    let call = reservation(&SessionId::generate(), 1, 100, 600);
    assert!(granted(&ledger.reserve(&call).await.unwrap()));
    // Reserving the same call again reserves nothing more.
    assert!(granted(&ledger.reserve(&call).await.unwrap()));
    assert_eq!(
        spent_now(ledger, &Owner::Tenant, BudgetKind::UsdDay).await,
        (0, 600)
    );
    ledger.settle(&call, &spent(40, 10, 300)).await.unwrap();
    ledger.settle(&call, &spent(40, 10, 300)).await.unwrap();
    assert_eq!(
        spent_now(ledger, &Owner::Tenant, BudgetKind::UsdDay).await,
        (300, 0)
    );
    assert_eq!(
        spent_now(ledger, &Owner::Tenant, BudgetKind::TokensDay).await,
        (50, 0)
    );
    let key = Owner::Key("k".into());
    assert_eq!(
        spent_now(ledger, &key, BudgetKind::UsdMonth).await,
        (300, 0)
    );
    let rows = ledger
        .usage(&tenant("acme"), None, &[day_periods(NOON).day])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].counts,
        UsageCounts {
            calls: 1,
            estimated_calls: 0,
            input_tokens: 40,
            cached_tokens: 0,
            output_tokens: 10,
            cost_nanos: 300,
        }
    );
    assert_eq!(
        (rows[0].key.as_str(), rows[0].route.as_str()),
        ("k", "chat")
    );
}

pub async fn racing_calls_never_overshoot(subject: Subject) {
    let ledger = subject.ledger.clone();
    let limit = 10_000;
    let tasks: Vec<_> = (0..40u32)
        .map(|call| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let mut r = reservation(&SessionId::generate(), call + 1, 10, 700);
                r.tenant_budgets = budgets(BudgetKind::UsdDay, limit);
                ledger.reserve(&r).await.unwrap()
            })
        })
        .collect();
    let mut won = 0;
    for task in tasks {
        if granted(&task.await.unwrap()) {
            won += 1;
        }
    }
    // 14 × 700 = 9,800 fits; a 15th would be 10,500.
    assert_eq!(won, 14);
    let (spent, reserved) = spent_now(&*ledger, &Owner::Tenant, BudgetKind::UsdDay).await;
    assert_eq!((spent, reserved), (0, 9_800));
}

pub async fn an_unsettled_reservation_is_charged_at_expiry(subject: Subject) {
    let ledger = &*subject.ledger;
    let call = reservation(&SessionId::generate(), 1, 100, 600);
    assert!(granted(&ledger.reserve(&call).await.unwrap()));
    let acme = [tenant("acme")];
    assert!(
        ledger
            .sweep(&acme, call.expires_ms - 1)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        ledger.sweep(&acme, call.expires_ms).await.unwrap(),
        vec![(tenant("acme"), 1)]
    );
    assert_eq!(
        spent_now(ledger, &Owner::Tenant, BudgetKind::UsdDay).await,
        (600, 0)
    );
    assert!(
        ledger
            .sweep(&acme, call.expires_ms + 1)
            .await
            .unwrap()
            .is_empty()
    );
    // A late settlement corrects the full charge to the real one.
    ledger.settle(&call, &spent(10, 10, 250)).await.unwrap();
    assert_eq!(
        spent_now(ledger, &Owner::Tenant, BudgetKind::UsdDay).await,
        (250, 0)
    );
}

pub async fn an_override_below_the_spend_stops_spending(subject: Subject) {
    let ledger = &*subject.ledger;
    let session = SessionId::generate();
    let first = reservation(&session, 1, 100, 600);
    assert!(granted(&ledger.reserve(&first).await.unwrap()));
    ledger.settle(&first, &spent(50, 50, 600)).await.unwrap();
    let acme = tenant("acme");
    let key = Owner::Key("k".into());
    ledger
        .set_override(&acme, &key, BudgetKind::UsdDay, Some(500))
        .await
        .unwrap();
    let second = reservation(&session, 2, 1, 1);
    assert!(matches!(
        ledger.reserve(&second).await.unwrap(),
        Reserved::OverBudget(Exceeded {
            owner: Owner::Key(_),
            kind: BudgetKind::UsdDay,
            limit: 500,
            used: 600
        })
    ));
    let states = ledger
        .budgets(&acme, &key, &day_periods(NOON))
        .await
        .unwrap();
    assert_eq!(states[0].runtime, Some(500));
    ledger
        .set_override(&acme, &key, BudgetKind::UsdDay, None)
        .await
        .unwrap();
    assert!(granted(&ledger.reserve(&second).await.unwrap()));
}

pub async fn a_session_has_a_lifetime_ceiling(subject: Subject) {
    let ledger = &*subject.ledger;
    let (one, two) = (SessionId::generate(), SessionId::generate());
    let ceiling = budgets(BudgetKind::SessionTokens, 150);
    let mut a = reservation(&one, 1, 100, 1);
    a.tenant_budgets = ceiling;
    assert!(granted(&ledger.reserve(&a).await.unwrap()));
    let mut b = reservation(&one, 2, 100, 1);
    b.tenant_budgets = ceiling;
    assert!(matches!(
        ledger.reserve(&b).await.unwrap(),
        Reserved::OverBudget(Exceeded {
            kind: BudgetKind::SessionTokens,
            ..
        })
    ));
    // Another session of the same tenant has its own ceiling.
    let mut c = reservation(&two, 3, 100, 1);
    c.tenant_budgets = ceiling;
    assert!(granted(&ledger.reserve(&c).await.unwrap()));
}

pub async fn the_token_bucket_waits_and_refunds(subject: Subject) {
    let ledger = &*subject.ledger;
    let limit = Limit::new(1_000, Duration::from_secs(60)).unwrap();
    let mut a = reservation(&SessionId::generate(), 1, 800, 1);
    a.tenant_tokens = Some(limit);
    assert!(granted(&ledger.reserve(&a).await.unwrap()));
    let mut b = reservation(&SessionId::generate(), 2, 800, 1);
    b.tenant_tokens = Some(limit);
    // 200 left; 600 more at 1,000 a minute is 36 s.
    assert_eq!(
        ledger.reserve(&b).await.unwrap(),
        Reserved::RateLimited {
            limit: "tokens_tenant",
            wait: Duration::from_secs(36),
        }
    );
    // The call used 100 of its 800: 700 come back.
    ledger.settle(&a, &spent(60, 40, 1)).await.unwrap();
    assert!(granted(&ledger.reserve(&b).await.unwrap()));
}

pub async fn a_new_day_starts_fresh_but_the_month_does_not(subject: Subject) {
    let ledger = &*subject.ledger;
    let session = SessionId::generate();
    let mut both = budgets(BudgetKind::TokensDay, 100);
    both.limits[BudgetKind::TokensMonth as usize] = Some(150);
    let mut today = reservation(&session, 1, 100, 1);
    today.tenant_budgets = both;
    assert!(granted(&ledger.reserve(&today).await.unwrap()));
    ledger.settle(&today, &spent(100, 0, 1)).await.unwrap();
    let tomorrow_ms = today.periods.day_end_ms;
    let mut tomorrow = reservation(&session, 2, 60, 1);
    tomorrow.tenant_budgets = both;
    tomorrow.now_ms = tomorrow_ms;
    tomorrow.periods = day_periods(tomorrow_ms);
    // The day allows it; the month (100 + 60 > 150) does not.
    assert!(matches!(
        ledger.reserve(&tomorrow).await.unwrap(),
        Reserved::OverBudget(Exceeded {
            kind: BudgetKind::TokensMonth,
            used: 100,
            ..
        })
    ));
    tomorrow.tokens = 50;
    assert!(granted(&ledger.reserve(&tomorrow).await.unwrap()));
}

pub async fn a_settlement_that_beats_its_reservation_makes_it_a_duplicate(subject: Subject) {
    let ledger = &*subject.ledger;
    // A call dropped while its reservation was on its way: settled at zero
    // first, then the reservation lands.
    let call = reservation(&SessionId::generate(), 1, 100, 600);
    ledger.settle(&call, &Spent::default()).await.unwrap();
    assert_eq!(
        ledger.reserve(&call).await.unwrap(),
        Reserved::Granted(Vec::new())
    );
    assert_eq!(
        spent_now(ledger, &Owner::Tenant, BudgetKind::UsdDay).await,
        (0, 0)
    );
    let rows = ledger
        .usage(&tenant("acme"), None, &[day_periods(NOON).day])
        .await
        .unwrap();
    assert!(rows.is_empty(), "{rows:?}");
}

/// Runs every case of the suite against the ledgers `make` returns.
#[macro_export]
macro_rules! ledger_suite {
    ($make:path) => {
        $crate::ledger_suite!(@cases $make;
            over_budget_reserves_nothing,
            settling_twice_charges_once,
            racing_calls_never_overshoot,
            an_unsettled_reservation_is_charged_at_expiry,
            an_override_below_the_spend_stops_spending,
            a_session_has_a_lifetime_ceiling,
            the_token_bucket_waits_and_refunds,
            a_new_day_starts_fresh_but_the_month_does_not,
            a_settlement_that_beats_its_reservation_makes_it_a_duplicate,
        );
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::cost::ledger::suite::$case($make()).await;
            }
        )*
    };
}
