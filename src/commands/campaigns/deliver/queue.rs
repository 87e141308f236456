//! A bounded queue with many consumers (tokio's mpsc has one): the claimer
//! puts emails in, every connection takes the next one. Bounded, so the
//! claimer never puts in more than the hand-off window.

use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

pub(super) struct QueueSender<T>(mpsc::Sender<T>);

impl<T> QueueSender<T> {
    /// Waits for room, then queues `item`; `Err` gives it back when every
    /// consumer has gone.
    pub(super) async fn send(&self, item: T) -> Result<(), T> {
        self.0.send(item).await.map_err(|e| e.0)
    }
}

pub(super) struct QueueReceiver<T>(Arc<Mutex<mpsc::Receiver<T>>>);

impl<T> Clone for QueueReceiver<T> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<T> QueueReceiver<T> {
    /// The next item, or `None` once the sender is dropped and the queue is
    /// empty.
    pub(super) async fn recv(&self) -> Option<T> {
        self.0.lock().await.recv().await
    }
}

/// A queue holding at most `capacity` items (at least one).
pub(super) fn queue<T>(capacity: usize) -> (QueueSender<T>, QueueReceiver<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (QueueSender(tx), QueueReceiver(Arc::new(Mutex::new(rx))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn each_item_goes_to_exactly_one_consumer_and_all_arrive() {
        let (tx, rx) = queue::<u32>(3);
        let consumers: Vec<_> = (0..4)
            .map(|_| {
                let rx = rx.clone();
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    while let Some(n) = rx.recv().await {
                        got.push(n);
                        tokio::task::yield_now().await;
                    }
                    got
                })
            })
            .collect();
        drop(rx);
        for n in 0..500 {
            tx.send(n).await.unwrap();
        }
        drop(tx);
        let mut all = Vec::new();
        let mut busy = 0;
        for c in consumers {
            let got = c.await.unwrap();
            busy += usize::from(!got.is_empty());
            all.extend(got);
        }
        all.sort();
        assert_eq!(all, (0..500).collect::<Vec<_>>());
        assert!(busy > 1, "one consumer took everything");
    }

    #[tokio::test]
    async fn a_full_queue_makes_the_sender_wait() {
        let (tx, rx) = queue::<u32>(2);
        tx.send(1).await.unwrap();
        tx.send(2).await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), tx.send(3)).await;
        assert!(third.is_err(), "a third item went into a queue of two");
        assert_eq!(rx.recv().await, Some(1));
        tokio::time::timeout(Duration::from_secs(5), tx.send(3))
            .await
            .expect("room freed by a take")
            .unwrap();
        assert_eq!(rx.recv().await, Some(2));
        assert_eq!(rx.recv().await, Some(3));
    }

    #[tokio::test]
    async fn the_queue_ends_when_the_sender_goes_and_gives_items_back_without_consumers() {
        let (tx, rx) = queue::<u32>(0);
        tx.send(7).await.unwrap();
        drop(tx);
        assert_eq!(rx.recv().await, Some(7));
        assert_eq!(rx.recv().await, None);

        let (tx, rx) = queue::<u32>(4);
        drop(rx);
        assert_eq!(tx.send(9).await, Err(9));
    }
}
