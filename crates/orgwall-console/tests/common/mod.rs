//! The console tests' server: the whole app (console and API) on an ephemeral port, with
//! email links absolute under it, and a small cookie-keeping client.
#![allow(
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use orgwall_store::Db;

/// The app on `127.0.0.1:PORT`.
pub struct Server {
    pub base: String,
    pub db: Db,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    pub async fn start(db: &Db) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let base = format!("http://{addr}");
        let mut state = orgwall_http::AppState::new(db.clone());
        state.limits = std::sync::Arc::new(orgwall_http::limits::Limits::new(
            orgwall_http::limits::LimitConfig {
                login_per_ip: 10_000,
                login_per_account: 10_000,
                user_per_minute: 1_000_000,
                ..Default::default()
            },
        ));
        state.public_url = Some(orgwall_store::repo::outbox::PublicUrl::parse(&base).unwrap());
        let app = orgwall_console::app(state);
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Server {
            base,
            db: db.clone(),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The newest link in the newest email to `to` whose path starts with `path`.
    pub async fn email_link(&self, to: &str, path: &str) -> String {
        let msgs = orgwall_store::repo::outbox::list(&self.db, None, Some(to), 50)
            .await
            .unwrap();
        let want = self.url(path);
        msgs.iter()
            .rev()
            .flat_map(|m| m.links().into_iter().map(str::to_owned).collect::<Vec<_>>())
            .find(|l| l.starts_with(&want))
            .unwrap_or_else(|| panic!("no {path} link in the email to {to}"))
    }

    /// A client that does not follow redirects.
    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap()
    }

    /// Logs `email` in through the console's form.
    pub async fn login(&self, email: &str, password: &str) -> Visitor {
        let c = self.client();
        let r = c
            .post(self.url("/login"))
            .header("origin", &self.base)
            .form(&[("email", email), ("password", password), ("next", "/")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 303, "login {email}");
        let cookie = r
            .headers()
            .get("set-cookie")
            .unwrap()
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let token = cookie.trim_start_matches("orgwall_session=").to_owned();
        Visitor {
            base: self.base.clone(),
            http: c,
            cookie,
            csrf: orgwall_http::wall::csrf_token(&token),
            token,
        }
    }

    pub async fn demo_login(&self, email: &str) -> Visitor {
        self.login(email, orgwall_store::seed::DEMO_PASSWORD).await
    }
}

/// A signed-in browser, as plain HTTP: the session cookie on every request.
pub struct Visitor {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: String,
    pub csrf: String,
    pub token: String,
}

/// Status, headers and text of a response.
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

async fn page(r: reqwest::Response) -> Page {
    Page {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.text().await.unwrap(),
    }
}

impl Visitor {
    pub async fn get(&self, path: &str) -> Page {
        page(
            self.http
                .get(format!("{}{path}", self.base))
                .header("cookie", &self.cookie)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts a form with the CSRF token added.
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let mut all: Vec<(&str, &str)> = vec![("csrf", self.csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all).await
    }

    /// Posts a form exactly as given (no CSRF token added).
    pub async fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        page(
            self.http
                .post(format!("{}{path}", self.base))
                .header("cookie", &self.cookie)
                .header("origin", &self.base)
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Globex's resources (made by Bob) whose ids Alice will put in Acme's console URLs, and
/// the texts that must never appear on her pages.
pub struct Globex {
    pub ticket: String,
    pub project: String,
    pub note: String,
    pub file: String,
    pub member: String,
    pub invitation: String,
    pub key: String,
    pub export: String,
    pub role: String,
    pub comment: String,
    pub secrets: Vec<String>,
}

pub async fn globex_ids(s: &Server, demo: &orgwall_testkit::Demo) -> Globex {
    use orgwall_store::repo::{
        api_keys, comments, exports, invitations, notes, projects, roles, tickets,
    };
    let db = &s.db;
    let scope = demo.bob_in_globex(db).await;
    let store = orgwall_store::files::LocalFiles::new(orgwall_http::files::scratch_root());
    let file = orgwall_testkit::store_file(
        db,
        &scope,
        &store,
        "globex-canary-file.txt",
        b"globex canary bytes",
    )
    .await;
    let mut tx = db.write(&scope).await.unwrap();
    let project = projects::create(&mut tx, "GLXCAN", "Globex canary project", "globex canary")
        .await
        .unwrap();
    let ticket = tickets::create(
        &mut tx,
        tickets::NewTicket {
            project_id: project.id,
            title: "Globex canary ticket",
            body: "globex canary body",
            assignee_id: None,
        },
    )
    .await
    .unwrap();
    let comment = comments::add(&mut tx, ticket.id, "Globex canary comment")
        .await
        .unwrap();
    let note = notes::create(&mut tx, "Globex canary note", "globex canary")
        .await
        .unwrap();
    let email = orgwall_core::Email::parse("canary-invitee@globex.test").unwrap();
    let (invitation, _) = invitations::create(&mut tx, &email, "member", |t| {
        format!("/invitations/accept?token={t}")
    })
    .await
    .unwrap();
    let (key, _) = api_keys::create(&mut tx, "Globex canary key", "member", None)
        .await
        .unwrap();
    let export = exports::create(&mut tx).await.unwrap();
    let role = roles::create(
        &mut tx,
        "glxcanary",
        "Globex canary role",
        orgwall_core::PermissionSet::default(),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    Globex {
        ticket: ticket.id.to_string(),
        project: project.id.to_string(),
        note: note.id.to_string(),
        file: file.to_string(),
        member: demo.bob.to_string(),
        invitation: invitation.id.to_string(),
        key: key.id.to_string(),
        export: export.id.to_string(),
        role: role.id.to_string(),
        comment: comment.id.to_string(),
        secrets: vec![
            "Globex".into(),
            "globex canary".into(),
            "bob@globex.test".into(),
            "Bob".into(),
            "canary-invitee".into(),
        ],
    }
}

/// Every console page URL of `org` that takes an id, filled with Globex's ids.
pub fn foreign_urls(org: &str, g: &Globex) -> Vec<String> {
    [
        format!("/tickets/{}", g.ticket),
        format!("/projects/{}", g.project),
        format!("/notes/{}", g.note),
        format!("/files/{}/download", g.file),
        format!("/members/{}", g.member),
        format!("/invitations/{}", g.invitation),
        format!("/api-keys/{}", g.key),
        format!("/exports/{}", g.export),
        format!("/exports/{}/download", g.export),
        format!("/roles/{}", g.role),
    ]
    .into_iter()
    .map(|p| format!("/o/{org}{p}"))
    .collect()
}

/// Every console form action of `org` that takes an id, filled with Globex's ids.
pub fn foreign_actions(org: &str, g: &Globex) -> Vec<String> {
    [
        format!("/tickets/{}", g.ticket),
        format!("/tickets/{}/status", g.ticket),
        format!("/tickets/{}/assign", g.ticket),
        format!("/tickets/{}/comments", g.ticket),
        format!("/tickets/{}/comments/{}/delete", g.ticket, g.comment),
        format!("/tickets/{}/delete", g.ticket),
        format!("/projects/{}", g.project),
        format!("/projects/{}/delete", g.project),
        format!("/notes/{}", g.note),
        format!("/notes/{}/delete", g.note),
        format!("/files/{}/delete", g.file),
        format!("/members/{}/role", g.member),
        format!("/members/{}/remove", g.member),
        format!("/invitations/{}/revoke", g.invitation),
        format!("/api-keys/{}/revoke", g.key),
        format!("/roles/{}", g.role),
        format!("/roles/{}/delete", g.role),
    ]
    .into_iter()
    .map(|p| format!("/o/{org}{p}"))
    .collect()
}
