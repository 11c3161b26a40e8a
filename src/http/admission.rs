//! Admission: the concurrency slots (`MAX_CONCURRENT_REQUESTS`) and the memory budget shared by
//! the request bodies held in memory (`REQUEST_BODY_MEMORY_MB`). Only work that has
//! authenticated takes either, so a client without a credential cannot starve the others.

use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::web::Bytes;
use actix_web::HttpResponse;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use super::error::EdgeError;

/// The budget is counted in KiB: a semaphore takes at most `u32` permits at once.
const UNIT: usize = 1024;

/// The node's slots and body budget, shared by every worker.
#[derive(Clone)]
pub struct Admission {
    slots: Arc<Semaphore>,
    body_budget: Arc<Semaphore>,
}

/// One concurrency slot, held until the response's last byte is sent (or the handler ends).
pub struct Slot {
    _permit: OwnedSemaphorePermit,
}

/// Bytes of the body budget held by one request body; grows as a body of unknown length arrives.
pub struct BodyReservation {
    permit: Option<OwnedSemaphorePermit>,
    units: usize,
    budget: Arc<Semaphore>,
}

impl Admission {
    /// `slots` concurrent requests; `body_budget_bytes` of request bodies in memory at once.
    pub fn new(slots: usize, body_budget_bytes: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(slots)),
            body_budget: Arc::new(Semaphore::new(units(body_budget_bytes))),
        }
    }

    /// A slot, or 503 with `Retry-After` when every slot is taken: refused at once, not queued.
    pub fn slot(&self) -> Result<Slot, EdgeError> {
        Arc::clone(&self.slots)
            .try_acquire_owned()
            .map(|permit| Slot { _permit: permit })
            .map_err(|_| EdgeError::Overloaded)
    }

    /// An empty reservation of the body budget.
    pub fn body_reservation(&self) -> BodyReservation {
        BodyReservation {
            permit: None,
            units: 0,
            budget: Arc::clone(&self.body_budget),
        }
    }
}

impl BodyReservation {
    /// Makes sure at least `bytes` are reserved; 503 with `Retry-After` when the budget has no
    /// room now.
    pub fn cover(&mut self, bytes: usize) -> Result<(), EdgeError> {
        let wanted = units(bytes);
        if wanted <= self.units {
            return Ok(());
        }
        let more = u32::try_from(wanted - self.units).map_err(|_| EdgeError::BodyBudget)?;
        let permit = Arc::clone(&self.budget)
            .try_acquire_many_owned(more)
            .map_err(|_| EdgeError::BodyBudget)?;
        match &mut self.permit {
            Some(held) => held.merge(permit),
            None => self.permit = Some(permit),
        }
        self.units = wanted;
        Ok(())
    }
}

impl Slot {
    /// Keeps the slot until `response` has been sent to its last byte: a streamed answer holds
    /// it while it streams.
    pub fn hold_until_sent(self, response: HttpResponse) -> HttpResponse {
        response.map_body(|_, body| BoxBody::new(GuardedBody::new(body, self)))
    }
}

/// The requests being served on this node, so a graceful stop waits for exactly them: idle
/// keep-alive connections do not hold it up.
#[derive(Clone, Default)]
pub struct InFlight {
    count: Arc<AtomicUsize>,
    idle: Arc<Notify>,
}

/// One request in flight, until dropped.
pub struct InFlightGuard(InFlight);

impl InFlight {
    /// Counts a request until the guard is dropped.
    pub fn enter(&self) -> InFlightGuard {
        self.count.fetch_add(1, Ordering::SeqCst);
        InFlightGuard(self.clone())
    }

    /// Requests in flight now.
    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    /// Waits until no request is in flight or `deadline` passes; true when none is left.
    pub async fn until_idle(&self, deadline: Instant) -> bool {
        loop {
            let notified = self.idle.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.count() == 0 {
                return true;
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline.into()) => return self.count() == 0,
            }
        }
    }
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.idle.notify_waiters();
        }
    }
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

/// A response body that holds `G` (a slot, an in-flight count) until it is sent or dropped.
pub struct GuardedBody<G> {
    inner: BoxBody,
    _guard: G,
}

impl<G> GuardedBody<G> {
    /// `inner`, holding `guard` while it lives.
    pub fn new(inner: BoxBody, guard: G) -> Self {
        Self {
            inner,
            _guard: guard,
        }
    }
}

impl<G: Unpin> MessageBody for GuardedBody<G> {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.inner.size()
    }

    fn poll_next(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_next(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_and_budget_refuse_when_full_and_free_on_drop() {
        let admission = Admission::new(1, 10 * UNIT);
        let slot = admission.slot().unwrap();
        assert!(matches!(admission.slot(), Err(EdgeError::Overloaded)));
        drop(slot);
        assert!(admission.slot().is_ok());

        let mut first = admission.body_reservation();
        first.cover(4 * UNIT).unwrap();
        first.cover(6 * UNIT + 1).unwrap();
        let mut second = admission.body_reservation();
        assert!(matches!(second.cover(4 * UNIT), Err(EdgeError::BodyBudget)));
        second.cover(3 * UNIT).unwrap();
        drop(first);
        second.cover(10 * UNIT).unwrap();
    }
}
