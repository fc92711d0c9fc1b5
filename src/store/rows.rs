//! Decoding result rows into the few value kinds our statements return.
//!
//! `sql.rs` promises `text`, `integer` and `boolean` columns only (JSON leaves
//! the server as text), so a cell is one of four things.

use tokio_postgres::types::Type;
use tokio_postgres::Row;

use crate::error::StoreError;

#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
  Null,
  Text(String),
  Int(i64),
  Bool(bool),
}

pub fn decode(rows: &[Row]) -> Result<Vec<Vec<Cell>>, StoreError> {
  rows
    .iter()
    .map(|row| {
      (0..row.len())
        .map(|index| decode_cell(row, index))
        .collect()
    })
    .collect()
}

fn decode_cell(row: &Row, index: usize) -> Result<Cell, StoreError> {
  let column = &row.columns()[index];
  let cell = match *column.type_() {
    Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR => row
      .try_get::<_, Option<String>>(index)?
      .map_or(Cell::Null, Cell::Text),
    Type::INT2 => row
      .try_get::<_, Option<i16>>(index)?
      .map_or(Cell::Null, |v| Cell::Int(v.into())),
    Type::INT4 => row
      .try_get::<_, Option<i32>>(index)?
      .map_or(Cell::Null, |v| Cell::Int(v.into())),
    Type::INT8 => row
      .try_get::<_, Option<i64>>(index)?
      .map_or(Cell::Null, Cell::Int),
    Type::BOOL => row
      .try_get::<_, Option<bool>>(index)?
      .map_or(Cell::Null, Cell::Bool),
    ref other => {
      return Err(StoreError::Internal(format!(
        "column '{}' has type {other}, which this package's statements never return",
        column.name()
      )))
    }
  };
  Ok(cell)
}
