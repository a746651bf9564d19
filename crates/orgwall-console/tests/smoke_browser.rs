mod common;
use common::Server;
use orgwall_testkit::browser::Browser;
use orgwall_testkit::{Demo, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let Some(b) = Browser::start().await else {
        return;
    };
    let t = TestDb::new(orgwall_store::BackendKind::Sqlite).await;
    Demo::load(&t.db).await;
    let s = Server::start(&t.db).await;
    b.goto(&s.url("/")).await;
    b.fill("#f-email", "alice@acme.test").await;
    b.fill("#f-password", "orgwall-demo").await;
    b.click("form button[type=submit]").await;
    b.wait_text("Tickets").await;
    println!("{}", b.url().await);
    println!("{}", b.cookies().await);
    println!("{}", b.text().await);
}
