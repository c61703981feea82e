//! One database per test: a fresh SQLite file, or a fresh PostgreSQL schema.

use sqlx::{Connection, PgConnection};
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use stepwise_store::{PgStore, SqliteStore, Store};
use uuid::Uuid;

const PG_URL_VAR: &str = "STEPWISE_TEST_DATABASE_URL";
const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// Where one Stepwise database lives.
#[derive(Clone, Debug)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL schema in the test database.
    Postgres(String),
}

enum Backend {
    Sqlite { dir: PathBuf },
    Postgres { url: String },
}

/// A migrated store on a database of its own, and the means to open more.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub primary: Database,
    backend: Backend,
    databases: Mutex<Vec<Database>>,
}

impl Harness {
    pub async fn sqlite() -> Arc<Self> {
        let dir =
            std::env::temp_dir().join(format!("stepwise-conformance-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("create a temporary directory for SQLite");
        Self::start(Backend::Sqlite { dir }).await
    }

    pub async fn postgres() -> Arc<Self> {
        let url = std::env::var(PG_URL_VAR).unwrap_or_else(|_| DEFAULT_PG_URL.to_string());
        admin_connection(&url).await;
        Self::start(Backend::Postgres { url }).await
    }

    async fn start(backend: Backend) -> Arc<Self> {
        let databases = Mutex::new(Vec::new());
        let primary = backend.new_database(&databases).await;
        let store = backend.connect(&primary).await;
        store.migrate().await.expect("migrate a fresh database");
        Arc::new(Harness {
            store,
            primary,
            backend,
            databases,
        })
    }

    /// The backend name every store of this harness must report.
    pub fn backend(&self) -> &'static str {
        match self.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres { .. } => "postgres",
        }
    }

    /// A new, empty database (not migrated), removed by [`Harness::finish`].
    pub async fn new_database(&self) -> Database {
        self.backend.new_database(&self.databases).await
    }

    /// Another handle (own pool) on `database`, as a second process would open it.
    pub async fn connect(&self, database: &Database) -> Arc<dyn Store> {
        self.backend.connect(database).await
    }

    /// Removes the databases of a test that passed (best effort).
    pub async fn finish(&self) {
        let databases = std::mem::take(&mut *self.databases.lock().unwrap());
        match &self.backend {
            Backend::Sqlite { dir } => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Backend::Postgres { url } => {
                let Ok(Ok(mut conn)) =
                    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await
                else {
                    return;
                };
                for database in databases {
                    if let Database::Postgres(schema) = database {
                        let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                            .execute(&mut conn)
                            .await;
                    }
                }
                let _ = conn.close().await;
            }
        }
    }
}

impl Backend {
    async fn new_database(&self, databases: &Mutex<Vec<Database>>) -> Database {
        let database = match self {
            Backend::Sqlite { dir } => {
                let n = databases.lock().unwrap().len();
                Database::Sqlite(dir.join(format!("db{n}.sqlite")))
            }
            Backend::Postgres { url } => {
                let schema = format!("sw_test_{}", Uuid::new_v4().simple());
                let mut conn = admin_connection(url).await;
                sqlx::query(&format!("CREATE SCHEMA {schema}"))
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("CREATE SCHEMA {schema}: {e}"));
                let _ = conn.close().await;
                Database::Postgres(schema)
            }
        };
        databases.lock().unwrap().push(database.clone());
        database
    }

    async fn connect(&self, database: &Database) -> Arc<dyn Store> {
        match (self, database) {
            (Backend::Sqlite { .. }, Database::Sqlite(path)) => {
                let url = format!("sqlite://{}", path.display());
                let store = SqliteStore::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("open {url}: {e}"));
                Arc::new(store)
            }
            (Backend::Postgres { url }, Database::Postgres(schema)) => {
                let store = PgStore::connect_in_schema(url, schema)
                    .await
                    .unwrap_or_else(|e| panic!("connect to schema {schema}: {e}"));
                Arc::new(store)
            }
            _ => panic!("{database:?} belongs to another backend"),
        }
    }
}

/// Connects to the test database or fails the test, saying how to point it elsewhere.
/// A missing database is never a silent skip.
async fn admin_connection(url: &str) -> PgConnection {
    let error =
        match tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url)).await {
            Ok(Ok(conn)) => return conn,
            Ok(Err(e)) => e.to_string(),
            Err(_) => "no answer within 10 s".to_string(),
        };
    let shown = redact(url);
    if std::env::var_os("CI").is_some() {
        panic!(
            "PostgreSQL is unreachable at {shown} ({error}). CI is set, so a missing database \
             is a failure: provide one and set {PG_URL_VAR}=postgres://USER:PASSWORD@HOST:PORT/DB \
             (the role needs CREATE on that database)."
        );
    }
    panic!(
        "PostgreSQL is unreachable at {shown} ({error}). The postgres:: conformance tests need \
         a database: set {PG_URL_VAR}=postgres://USER:PASSWORD@HOST:PORT/DB (the role needs \
         CREATE on that database), or run only the SQLite cases with \
         `cargo test -p stepwise-store --test conformance sqlite::`."
    );
}

/// The URL without its password.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    match rest.split_once('@') {
        Some((user_info, host)) if user_info.contains(':') => {
            let user = user_info.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_string(),
    }
}

/// Lets every case take either the store or the whole harness.
pub trait Case<Arg> {
    fn run(self, harness: &Arc<Harness>) -> Pin<Box<dyn Future<Output = ()>>>;
}

impl<F, Fut> Case<Arc<dyn Store>> for F
where
    F: FnOnce(Arc<dyn Store>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    fn run(self, harness: &Arc<Harness>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(self(harness.store.clone()))
    }
}

impl<F, Fut> Case<Arc<Harness>> for F
where
    F: FnOnce(Arc<Harness>) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    fn run(self, harness: &Arc<Harness>) -> Pin<Box<dyn Future<Output = ()>>> {
        Box::pin(self(harness.clone()))
    }
}
