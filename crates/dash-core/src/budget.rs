//! Budgets: how much a swarm may spend, how much it has spent, and which
//! alert level that puts it at. Crossing into [`BudgetLevel::Exhausted`]
//! is what makes the store pause a swarm; this module only reports it.

use serde::{Deserialize, Serialize};

use crate::validate::{validate_currency, validate_money, validate_thresholds, ValidationError};

/// Fraction of the allocation at which a budget turns [`BudgetLevel::Warning`].
pub const DEFAULT_WARNING_THRESHOLD: f64 = 0.75;
/// Fraction of the allocation at which a budget turns [`BudgetLevel::Critical`].
pub const DEFAULT_CRITICAL_THRESHOLD: f64 = 0.90;
/// Currency used when none is given.
pub const DEFAULT_CURRENCY: &str = "USD";

string_enum! {
    /// How close a budget is to running out, in increasing order of urgency.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
    pub enum BudgetLevel("budget level") {
        /// Below the warning threshold, or no limit at all.
        Normal => "normal",
        /// At or above the warning threshold.
        Warning => "warning",
        /// At or above the critical threshold.
        Critical => "critical",
        /// Everything allocated has been spent.
        Exhausted => "exhausted",
    }
}

impl BudgetLevel {
    /// The levels newly reached going from `before` to `after`, lowest
    /// first (never `Normal`); empty when the level did not go up. A cost
    /// and a lowered allocation both report their crossings with this.
    pub fn crossed(before: BudgetLevel, after: BudgetLevel) -> Vec<BudgetLevel> {
        BudgetLevel::ALL
            .into_iter()
            .filter(|l| *l > before && *l <= after)
            .collect()
    }
}

/// A swarm's spending limit and what it has consumed so far.
///
/// An `allocated` of 0 means "no limit": such a budget is always
/// [`BudgetLevel::Normal`] and never exhausted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Budget {
    /// Spending limit; 0 means unlimited.
    pub allocated: f64,
    /// Spent so far.
    pub consumed: f64,
    /// ISO 4217 code, e.g. `"USD"`.
    pub currency: String,
    /// Fraction of `allocated` at which the level becomes `Warning`.
    pub warning_threshold: f64,
    /// Fraction of `allocated` at which the level becomes `Critical`.
    pub critical_threshold: f64,
}

/// The result of [`Budget::apply_cost`].
#[derive(Debug, Clone, PartialEq)]
pub struct CostOutcome {
    /// The budget with the cost added.
    pub budget: Budget,
    /// Levels newly reached by this cost, lowest first (never `Normal`);
    /// e.g. `[Warning, Critical, Exhausted]` when one cost takes the budget
    /// from 50% to 120%. Empty when the level did not go up.
    pub crossed: Vec<BudgetLevel>,
    /// Whether the budget is exhausted after the cost, whether or not it
    /// already was, so the caller can make sure the swarm stays paused.
    pub exhausted: bool,
}

impl Budget {
    /// A fresh budget: nothing consumed, default thresholds.
    pub fn new(allocated: f64, currency: impl Into<String>) -> Self {
        Self {
            allocated,
            consumed: 0.0,
            currency: currency.into(),
            warning_threshold: DEFAULT_WARNING_THRESHOLD,
            critical_threshold: DEFAULT_CRITICAL_THRESHOLD,
        }
    }

    /// Checks every field: amounts, currency and thresholds.
    pub fn validate(&self) -> Result<(), ValidationError> {
        validate_money("allocated", self.allocated)?;
        validate_money("consumed", self.consumed)?;
        validate_currency(&self.currency)?;
        validate_thresholds(self.warning_threshold, self.critical_threshold)
    }

    /// Whether the budget has no spending limit (`allocated` is 0).
    pub fn is_unlimited(&self) -> bool {
        // A NaN allocation also counts as "no limit" rather than comparing
        // false everywhere.
        self.allocated.is_nan() || self.allocated <= 0.0
    }

    /// `consumed / allocated`; 0 for an unlimited budget. May exceed 1.
    pub fn utilization(&self) -> f64 {
        if self.is_unlimited() {
            0.0
        } else {
            self.consumed / self.allocated
        }
    }

    /// What can still be spent before exhaustion, never negative;
    /// `f64::INFINITY` for an unlimited budget (check [`Self::is_unlimited`]
    /// before storing or serializing it: JSON has no infinity).
    pub fn remaining(&self) -> f64 {
        if self.is_unlimited() {
            f64::INFINITY
        } else {
            (self.allocated - self.consumed).max(0.0)
        }
    }

    /// The alert level. An unlimited budget is always `Normal`; otherwise
    /// `Exhausted` once `consumed >= allocated`, then `Critical` and
    /// `Warning` when utilization reaches the respective threshold.
    pub fn level(&self) -> BudgetLevel {
        if self.is_unlimited() {
            return BudgetLevel::Normal;
        }
        let used = self.utilization();
        if self.consumed >= self.allocated {
            BudgetLevel::Exhausted
        } else if used >= self.critical_threshold {
            BudgetLevel::Critical
        } else if used >= self.warning_threshold {
            BudgetLevel::Warning
        } else {
            BudgetLevel::Normal
        }
    }

    /// Whether everything allocated has been spent (never for an unlimited
    /// budget).
    pub fn is_exhausted(&self) -> bool {
        self.level() == BudgetLevel::Exhausted
    }

    /// Adds `cost` (finite, 0 to 1e12; errors name the field `cost`) and
    /// reports every level boundary crossed upward.
    pub fn apply_cost(&self, cost: f64) -> Result<CostOutcome, ValidationError> {
        validate_money("cost", cost)?;
        let before = self.level();
        let budget = Budget {
            consumed: self.consumed + cost,
            ..self.clone()
        };
        let after = budget.level();
        let crossed = BudgetLevel::crossed(before, after);
        Ok(CostOutcome {
            exhausted: after == BudgetLevel::Exhausted,
            budget,
            crossed,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use BudgetLevel as L;

    fn spent(allocated: f64, consumed: f64) -> Budget {
        Budget {
            consumed,
            ..Budget::new(allocated, "USD")
        }
    }

    #[test]
    fn levels_follow_thresholds() {
        let cases = [
            (0.0, L::Normal),
            (74.99, L::Normal),
            (75.0, L::Warning),
            (89.99, L::Warning),
            (90.0, L::Critical),
            (99.99, L::Critical),
            (100.0, L::Exhausted),
            (150.0, L::Exhausted),
        ];
        for (consumed, level) in cases {
            assert_eq!(spent(100.0, consumed).level(), level, "consumed {consumed}");
        }
    }

    #[test]
    fn unlimited_budget_is_always_normal() {
        let b = spent(0.0, 1e9);
        assert!(b.is_unlimited());
        assert_eq!(b.level(), L::Normal);
        assert_eq!(b.utilization(), 0.0);
        assert_eq!(b.remaining(), f64::INFINITY);
        let out = b.apply_cost(5.0).unwrap();
        assert!(out.crossed.is_empty());
        assert!(!out.exhausted);
    }

    #[test]
    fn utilization_and_remaining() {
        let b = spent(200.0, 50.0);
        assert_eq!(b.utilization(), 0.25);
        assert_eq!(b.remaining(), 150.0);
        assert_eq!(spent(10.0, 12.0).remaining(), 0.0);
    }

    #[test]
    fn one_big_cost_crosses_every_boundary() {
        let out = spent(100.0, 50.0).apply_cost(70.0).unwrap();
        assert_eq!(out.crossed, [L::Warning, L::Critical, L::Exhausted]);
        assert!(out.exhausted);
        assert_eq!(out.budget.consumed, 120.0);
    }

    #[test]
    fn a_lowered_allocation_crosses_every_level_it_skips() {
        let before = spent(100.0, 50.0);
        let after = Budget {
            allocated: 40.0,
            ..before.clone()
        };
        assert_eq!(
            BudgetLevel::crossed(before.level(), after.level()),
            [L::Warning, L::Critical, L::Exhausted]
        );
        assert!(BudgetLevel::crossed(after.level(), before.level()).is_empty());
        let unlimited = Budget {
            allocated: 0.0,
            ..before
        };
        assert!(BudgetLevel::crossed(after.level(), unlimited.level()).is_empty());
    }

    #[test]
    fn crossing_is_reported_once() {
        let first = spent(100.0, 70.0).apply_cost(10.0).unwrap();
        assert_eq!(first.crossed, [L::Warning]);
        let second = first.budget.apply_cost(1.0).unwrap();
        assert!(second.crossed.is_empty());
        let done = spent(100.0, 100.0).apply_cost(1.0).unwrap();
        assert!(done.crossed.is_empty());
        assert!(
            done.exhausted,
            "still exhausted, so the swarm must stay paused"
        );
    }

    #[test]
    fn invalid_costs_are_rejected() {
        for bad in [-1.0, f64::NAN, f64::INFINITY] {
            assert_eq!(spent(100.0, 0.0).apply_cost(bad).unwrap_err().field, "cost");
        }
    }

    #[test]
    fn validate_checks_every_field() {
        assert!(Budget::new(100.0, "USD").validate().is_ok());
        assert_eq!(
            Budget::new(-1.0, "USD").validate().unwrap_err().field,
            "allocated"
        );
        assert_eq!(
            Budget::new(1.0, "usd").validate().unwrap_err().field,
            "currency"
        );
        let b = Budget {
            warning_threshold: 0.95,
            ..Budget::new(1.0, "USD")
        };
        assert_eq!(b.validate().unwrap_err().field, "warning_threshold");
    }

    #[test]
    fn serde_shape() {
        let json = serde_json::to_value(Budget::new(10.0, "EUR")).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "allocated": 10.0, "consumed": 0.0, "currency": "EUR",
                "warning_threshold": 0.75, "critical_threshold": 0.9
            })
        );
        assert_eq!(
            serde_json::to_string(&L::Exhausted).unwrap(),
            r#""exhausted""#
        );
    }
}
