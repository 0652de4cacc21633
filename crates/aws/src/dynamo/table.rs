//! One DynamoDB table of a store: its client and name, and the item operations the stores
//! share. Each maps an SDK error to a `StoreError` carrying the caller's context (a failed
//! condition is `StoreError::Conflict`), so a store states only its keys and conditions.

use aws_sdk_dynamodb::operation::delete_item::builders::DeleteItemFluentBuilder;
use aws_sdk_dynamodb::operation::put_item::builders::PutItemFluentBuilder;
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::ReturnValue;
use aws_sdk_dynamodb::Client;
use serde::de::DeserializeOwned;
use tracklayer_core::error::StoreError;

use super::{doc, get_item, query_prefix, Item};
use crate::error::store;

/// A table of a store, by name, with the client that reaches it.
#[derive(Debug, Clone)]
pub(crate) struct Table {
    client: Client,
    name: String,
}

impl Table {
    pub(crate) fn new(client: Client, name: impl Into<String>) -> Self {
        Self {
            client,
            name: name.into(),
        }
    }

    pub(crate) fn client(&self) -> &Client {
        &self.client
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// One item by key, read strongly consistently.
    pub(crate) async fn get(
        &self,
        context: &'static str,
        item_key: Item,
    ) -> Result<Option<Item>, StoreError> {
        get_item(&self.client, &self.name, context, item_key).await
    }

    /// The JSON document (`doc` attribute) of one item by key, read strongly consistently.
    pub(crate) async fn get_doc<T: DeserializeOwned>(
        &self,
        context: &'static str,
        item_key: Item,
    ) -> Result<Option<T>, StoreError> {
        let item = self.get(context, item_key).await?;
        item.map(|i| doc(&i, context)).transpose()
    }

    /// Writes `item`, replacing any item of its key, only if `condition` holds when there is
    /// one (`StoreError::Conflict` if not).
    pub(crate) async fn put(
        &self,
        context: &'static str,
        item: Item,
        condition: Option<&str>,
    ) -> Result<(), StoreError> {
        let request = self.put_item().set_item(Some(item));
        let request = match condition {
            Some(c) => request.condition_expression(c),
            None => request,
        };
        request.send().await.map_err(|e| store(context, e))?;
        Ok(())
    }

    /// Deletes the item of `item_key`; returns what it held, if there was one.
    pub(crate) async fn delete(
        &self,
        context: &'static str,
        item_key: Item,
    ) -> Result<Option<Item>, StoreError> {
        let out = self
            .delete_item(item_key)
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| store(context, e))?;
        Ok(out.attributes.filter(|a| !a.is_empty()))
    }

    /// A query of this table, for its key condition to be added.
    pub(crate) fn query(&self) -> QueryFluentBuilder {
        self.client.query().table_name(&self.name)
    }

    /// A consistent query of the items of partition `pk` whose sort key begins with `prefix`.
    pub(crate) fn query_prefix(
        &self,
        pk: impl Into<String>,
        prefix: impl Into<String>,
    ) -> QueryFluentBuilder {
        query_prefix(&self.client, &self.name, pk, prefix)
    }

    /// A `PutItem` into this table, for its item (and condition) to be added.
    pub(crate) fn put_item(&self) -> PutItemFluentBuilder {
        self.client.put_item().table_name(&self.name)
    }

    /// A `DeleteItem` of the item of `item_key`, for its condition to be added.
    pub(crate) fn delete_item(&self, item_key: Item) -> DeleteItemFluentBuilder {
        self.client
            .delete_item()
            .table_name(&self.name)
            .set_key(Some(item_key))
    }

    /// An `UpdateItem` of the item of `item_key`, for its expression to be added.
    pub(crate) fn update_item(&self, item_key: Item) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.name)
            .set_key(Some(item_key))
    }
}
