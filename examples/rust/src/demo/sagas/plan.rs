// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the saga workers run, decided here once for all three languages (the workers only
//! execute it): the order, payment and inventory mix, the saga that stalls, and the two
//! sagas that deadlock.
//!
//! Every saga takes its locks in one global order (inventory before accounts, then by name),
//! so the mix never deadlocks by itself: the one deadlock of the story is the staged one.

use serde_json::{json, Value};

use crate::demo::event::Who;

/// The shared resources of the mix.
pub const SKUS: [&str; 3] = ["inventory:sku-1", "inventory:sku-2", "inventory:sku-3"];
pub const ACCOUNTS: [&str; 3] = ["account:1", "account:2", "account:3"];
/// The saga types (the monitor's thresholds are set for each).
pub const TYPES: [&str; 3] = ["OrderSaga", "PaymentSaga", "InventorySaga"];
/// Why a declined order is compensated.
pub const DECLINED: &str = "payment declined";

/// One step: its name, the lock it takes (kept until the saga ends), its work.
#[derive(Clone, Debug)]
pub struct Step {
    pub name: &'static str,
    pub resource: Option<String>,
    pub work_ms: u64,
}

/// One saga of the plan.
#[derive(Clone, Debug)]
pub struct Saga {
    pub id: String,
    pub saga_type: &'static str,
    pub priority: i32,
    pub steps: Vec<Step>,
    /// The step after which it fails and compensates (a declined payment).
    pub decline_at: Option<usize>,
}

impl Saga {
    /// The final status it should reach when it runs to its end.
    pub fn expected(&self) -> &'static str {
        if self.decline_at.is_some() {
            "COMPENSATED"
        } else {
            "COMPLETED"
        }
    }

    pub fn to_json(&self) -> Value {
        let steps: Vec<Value> = self
            .steps
            .iter()
            .map(|s| json!({ "name": s.name, "resource": s.resource, "work_ms": s.work_ms }))
            .collect();
        json!({
            "id": self.id, "type": self.saga_type, "priority": self.priority,
            "steps": steps, "decline_at": self.decline_at,
        })
    }
}

/// The short tag of a language in saga ids.
pub fn tag(who: Who) -> &'static str {
    match who {
        Who::Rust => "rs",
        Who::Python => "py",
        Who::Node => "js",
        _ => "demo",
    }
}

/// A small deterministic generator: the same plan on every run.
struct Dice(u64);

impl Dice {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn step(name: &'static str, resource: Option<&str>, work_ms: u64) -> Step {
    Step {
        name,
        resource: resource.map(str::to_string),
        work_ms,
    }
}

/// `per_language` sagas for `who`, cycling through the three types; every fourth order has
/// its payment declined.
pub fn mix(who: Who, per_language: usize) -> Vec<Saga> {
    let offset = match who {
        Who::Rust => 0,
        Who::Python => 1,
        _ => 2,
    };
    let mut dice = Dice(0x5a6a + offset as u64);
    let mut orders = 0;
    (0..per_language)
        .map(|i| {
            let saga_type = TYPES[(i + offset) % TYPES.len()];
            let sku = SKUS[dice.next(SKUS.len())];
            let account = ACCOUNTS[dice.next(ACCOUNTS.len())];
            let work = 20 + 10 * dice.next(4) as u64;
            let (kind, steps, decline_at) = match saga_type {
                "OrderSaga" => {
                    orders += 1;
                    let steps = vec![
                        step("reserve-inventory", Some(sku), work),
                        step("charge-payment", Some(account), work),
                        step("confirm-order", None, work / 2),
                    ];
                    ("order", steps, (orders % 4 == 2).then_some(1))
                }
                "PaymentSaga" => (
                    "payment",
                    vec![
                        step("authorize", Some(account), work),
                        step("capture", None, work),
                    ],
                    None,
                ),
                _ => {
                    // a transfer between two SKUs, taken in name order
                    let mut other = SKUS[dice.next(SKUS.len())];
                    if other == sku {
                        other = SKUS[(SKUS.iter().position(|s| *s == sku).unwrap_or(0) + 1) % 3];
                    }
                    let (a, b) = if sku < other {
                        (sku, other)
                    } else {
                        (other, sku)
                    };
                    (
                        "inventory",
                        vec![
                            step("take-stock", Some(a), work),
                            step("put-stock", Some(b), work),
                        ],
                        None,
                    )
                }
            };
            Saga {
                id: format!("{}-{kind}-{}", tag(who), i + 1),
                saga_type,
                priority: 0,
                steps,
                decline_at,
            }
        })
        .collect()
}

/// The saga that stalls: it reserves its own SKU (nobody else needs it), then its payment
/// step hangs, so its record stops moving while it says EXECUTING.
pub fn stalled(who: Who) -> Saga {
    Saga {
        id: format!("{}-order-stalled", tag(who)),
        saga_type: "OrderSaga",
        priority: 0,
        steps: vec![
            step("reserve-inventory", Some("inventory:sku-9"), 30),
            step("charge-payment", None, 0),
        ],
        decline_at: None,
    }
}

/// The two sagas of the deadlock: each holds one of two resources and then waits for the
/// other's. The lower priority is the victim.
pub struct Deadlock {
    pub strong: (Who, Saga),
    pub weak: (Who, Saga),
}

pub fn deadlock(strong: Who, weak: Who) -> Deadlock {
    let saga = |who: Who, priority: i32, first: &str, second: &str| Saga {
        id: format!("{}-order-deadlock", tag(who)),
        saga_type: "OrderSaga",
        priority,
        steps: vec![
            step("reserve-inventory", Some(first), 20),
            step("charge-payment", Some(second), 20),
        ],
        decline_at: None,
    };
    Deadlock {
        strong: (strong, saga(strong, 5, "inventory:sku-7", "account:7")),
        weak: (weak, saga(weak, 1, "account:7", "inventory:sku-7")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_takes_locks_in_one_global_order_and_declines_some_orders() {
        let rank = |r: &str| (!r.starts_with("inventory:"), r.to_string());
        let mut declined = 0;
        for who in [Who::Rust, Who::Python, Who::Node] {
            let sagas = mix(who, 8);
            assert_eq!(sagas.len(), 8);
            for s in &sagas {
                let taken: Vec<_> = s
                    .steps
                    .iter()
                    .filter_map(|s| s.resource.as_deref())
                    .collect();
                let mut sorted = taken.clone();
                sorted.sort_by_key(|r| rank(r));
                sorted.dedup();
                assert_eq!(taken, sorted, "{s:?}");
                declined += usize::from(s.decline_at.is_some());
            }
        }
        assert!(declined >= 2, "{declined}");
    }
}
