// SPDX-License-Identifier: MIT OR Apache-2.0
use std::time::Duration;

use txcoord::{AcquireOptions, Client, LockManager};

#[tokio::main]
async fn main() -> txcoord::Result<()> {
    let url = std::env::var("REDIS_URL").expect("set REDIS_URL, e.g. redis://127.0.0.1:6380");
    let client = Client::open(&url)?;
    let manager = LockManager::new(&client);

    // The seed's acquireLock(resource, ttl = 30000, timeout = 10000): None on timeout.
    let ttl = Duration::from_millis(30_000);
    let timeout = Duration::from_millis(10_000);
    if let Some(lock) = manager.acquire_lock("order:42", ttl, timeout).await? {
        // Renewed every ttl/3 in the background; pass the token to every write it protects.
        println!(
            "holding {} with fencing token {:?}",
            lock.key(),
            lock.fencing_token()
        );
        manager.release_lock("order:42").await?;
    }

    // The scoped form always releases, and fails with ErrorKind::Timeout if it cannot acquire.
    let token = manager
        .with_lock("order:42", AcquireOptions::new(), |lock| async move {
            lock.fencing_token()
        })
        .await?;
    println!("scoped work done under token {token:?}");
    Ok(())
}
