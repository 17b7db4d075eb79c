use std::time::Duration;
use txcoord::{Client, LockManager};
use txcoord_testkit::RedisServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let server = RedisServer::start();
    let client = Client::open(&server.url()).unwrap();
    client.ping().await.unwrap();
    let m = LockManager::new(&client);
    let a = m.acquire_lock("r", Duration::from_secs(5), Duration::from_secs(1)).await.unwrap().unwrap();
    println!("token {:?} keys {:?}", a.fencing_token(), server.keys());
    let m2 = m.clone();
    let t = tokio::spawn(async move {
        let s = std::time::Instant::now();
        let b = m2.acquire_lock("r", Duration::from_secs(5), Duration::from_secs(3)).await.unwrap();
        (b.map(|b| b.fencing_token()), s.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    println!("keys while waiting {:?}", server.keys());
    m.release_lock("r").await.unwrap();
    let (tok, waited) = t.await.unwrap();
    println!("second token {tok:?} waited {waited:?} stats {:?}", client.stats());
    m.release_all_locks().await;
    println!("keys after {:?}", server.keys());
}
