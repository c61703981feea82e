//! placeholder
#[derive(Debug)]
pub struct SqliteStore;
impl SqliteStore { pub async fn connect(_u: &str) -> crate::Result<Self> { todo!() } }
