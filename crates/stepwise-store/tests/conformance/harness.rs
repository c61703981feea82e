//! One database per test: a fresh SQLite file, or a fresh PostgreSQL schema, both
//! from the shared test kit and removed when the harness is dropped (so also when
//! the case panics).

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use stepwise_store::{PgStore, SqliteStore, Store};
use stepwise_testkit::{PgSchema, TempDir};

/// Where one Stepwise database lives.
#[derive(Clone, Debug)]
pub enum Database {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL schema in the test database.
    Postgres(String),
}

enum Backend {
    Sqlite { dir: TempDir },
    Postgres,
}

/// A migrated store on a database of its own, and the means to open more.
pub struct Harness {
    pub store: Arc<dyn Store>,
    pub primary: Database,
    /// Declared after `store`, so dropped after it: removes every database.
    databases: Databases,
}

/// The databases of one case, removed when dropped.
struct Databases {
    backend: Backend,
    /// Each drops its schema when dropped.
    schemas: Mutex<Vec<PgSchema>>,
    sqlite_files: Mutex<usize>,
}

/// Whether the `backend` variant of a case should return at once
/// (`STEPWISE_TEST_SKIP_POSTGRES`, never under CI).
pub fn skip(backend: &str) -> bool {
    backend == "postgres" && stepwise_testkit::skip_postgres()
}

impl Harness {
    pub async fn sqlite() -> Arc<Self> {
        Self::start(Backend::Sqlite {
            dir: TempDir::new("stepwise-conformance"),
        })
        .await
    }

    pub async fn postgres() -> Arc<Self> {
        Self::start(Backend::Postgres).await
    }

    async fn start(backend: Backend) -> Arc<Self> {
        let databases = Databases {
            backend,
            schemas: Mutex::new(Vec::new()),
            sqlite_files: Mutex::new(0),
        };
        let primary = databases.create();
        let store = databases.connect(&primary).await;
        store.migrate().await.expect("migrate a fresh database");
        Arc::new(Harness {
            store,
            primary,
            databases,
        })
    }

    /// The backend name every store of this harness must report.
    pub fn backend(&self) -> &'static str {
        match self.databases.backend {
            Backend::Sqlite { .. } => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// A new, empty database (not migrated), removed with the harness.
    pub async fn new_database(&self) -> Database {
        self.databases.create()
    }

    /// Another handle (own pool) on `database`, as a second process would open it.
    pub async fn connect(&self, database: &Database) -> Arc<dyn Store> {
        self.databases.connect(database).await
    }

    /// Ends the case. The databases go when the harness is dropped, passed or not.
    pub async fn finish(&self) {}
}

impl Databases {
    fn create(&self) -> Database {
        match &self.backend {
            Backend::Sqlite { dir } => {
                let mut n = self.sqlite_files.lock().unwrap();
                *n += 1;
                Database::Sqlite(dir.path().join(format!("db{n}.sqlite")))
            }
            Backend::Postgres => {
                let schema = PgSchema::create();
                let name = schema.name.clone();
                self.schemas.lock().unwrap().push(schema);
                Database::Postgres(name)
            }
        }
    }

    async fn connect(&self, database: &Database) -> Arc<dyn Store> {
        match (&self.backend, database) {
            (Backend::Sqlite { .. }, Database::Sqlite(path)) => {
                let url = stepwise_testkit::sqlite_url(path);
                let store = SqliteStore::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("open {url}: {e}"));
                Arc::new(store)
            }
            (Backend::Postgres, Database::Postgres(schema)) => {
                let url = stepwise_testkit::pg_base_url();
                let store = PgStore::connect_in_schema(&url, schema)
                    .await
                    .unwrap_or_else(|e| panic!("connect to schema {schema}: {e}"));
                Arc::new(store)
            }
            _ => panic!("{database:?} belongs to another backend"),
        }
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
