//! Reading the Segment ecommerce properties of an event (the v2 spec:
//! <https://segment.com/docs/connections/spec/ecommerce/v2/>) into what destinations have
//! fields for: its value, currency, order id, products and query.

use serde_json::{Map, Number, Value};

use crate::common::put;

/// A number from a JSON number or a numeric string (`"12.50"`), finite only.
pub(crate) fn number(v: Option<&Value>) -> Option<Number> {
    match v? {
        Value::Number(n) => n.as_f64().filter(|f| f.is_finite()).map(|_| n.clone()),
        Value::String(s) => s
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|f| f.is_finite())
            .and_then(Number::from_f64),
        _ => None,
    }
}

/// A string from a JSON string (trimmed, not blank) or a number (`123` → `"123"`).
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The first of `keys` that holds a number.
fn first_number(props: &Map<String, Value>, keys: &[&str]) -> Option<Number> {
    keys.iter().find_map(|k| number(props.get(*k)))
}

/// The first of `keys` that holds a string or a number.
fn first_text(props: &Map<String, Value>, keys: &[&str]) -> Option<String> {
    keys.iter().find_map(|k| text(props.get(*k)))
}

/// A product of the Segment ecommerce spec (`products[]`, or the properties of a single
/// product event such as `Product Added`).
/// Source: <https://segment.com/docs/connections/spec/ecommerce/v2/>.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Product {
    /// `product_id`, else `sku`, else `id`.
    pub id: Option<String>,
    pub name: Option<String>,
    pub price: Option<Number>,
    pub quantity: Option<Number>,
    pub brand: Option<String>,
    pub category: Option<String>,
    pub variant: Option<String>,
    pub coupon: Option<String>,
}

impl Product {
    fn read(p: &Map<String, Value>) -> Self {
        Self {
            id: first_text(p, &["product_id", "sku", "id"]),
            name: first_text(p, &["name"]),
            price: first_number(p, &["price"]),
            quantity: first_number(p, &["quantity"]),
            brand: first_text(p, &["brand"]),
            category: first_text(p, &["category"]),
            variant: first_text(p, &["variant"]),
            coupon: first_text(p, &["coupon"]),
        }
    }

    /// The quantity as a whole number of units (1 when absent or not positive).
    pub fn units(&self) -> u64 {
        self.quantity
            .as_ref()
            .and_then(Number::as_f64)
            .filter(|q| *q >= 1.0)
            .map(|q| q.round() as u64)
            .unwrap_or(1)
    }
}

/// The Segment ecommerce properties of an event that destinations have fields for.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Commerce {
    /// `revenue`, else `total`, else `value`; for a single product without any of them,
    /// `price × quantity`.
    pub value: Option<Number>,
    pub currency: Option<String>,
    pub order_id: Option<String>,
    pub products: Vec<Product>,
    /// `query` of `Products Searched`.
    pub query: Option<String>,
    pub coupon: Option<String>,
    pub shipping: Option<Number>,
    pub tax: Option<Number>,
    pub affiliation: Option<String>,
    /// `category` of the event (e.g. `Product Viewed`).
    pub category: Option<String>,
    /// `name` of the product or page.
    pub name: Option<String>,
}

/// The products of an event that have an id, as a vendor lists them: each made by `content`,
/// with their ids and their units in all.
pub(crate) struct Contents {
    pub contents: Vec<Value>,
    pub ids: Vec<Value>,
    pub units: u64,
}

impl Contents {
    /// `None` when no product has an id.
    pub fn of(c: &Commerce, content: impl Fn(&Product) -> Map<String, Value>) -> Option<Self> {
        let with_id: Vec<&Product> = c.products.iter().filter(|p| p.id.is_some()).collect();
        if with_id.is_empty() {
            return None;
        }
        Some(Self {
            contents: with_id.iter().map(|p| Value::Object(content(p))).collect(),
            ids: with_id
                .iter()
                .filter_map(|p| p.id.clone())
                .map(Value::from)
                .collect(),
            units: with_id.iter().map(|p| p.units()).sum(),
        })
    }
}

impl Commerce {
    /// The product and search fields of Meta's `custom_data`, which Pinterest's copies:
    /// `contents` (each made by `content`), `content_ids` and `num_items` when a product has an
    /// id, then `search_string`, `content_name` and `content_category`.
    pub fn put_products_and_search(
        &self,
        out: &mut Map<String, Value>,
        content: impl Fn(&Product) -> Map<String, Value>,
    ) {
        if let Some(Contents {
            contents,
            ids,
            units,
        }) = Contents::of(self, content)
        {
            out.insert("contents".into(), Value::Array(contents));
            out.insert("content_ids".into(), Value::Array(ids));
            out.insert("num_items".into(), units.into());
        }
        put(out, "search_string", self.query.clone());
        put(out, "content_name", self.name.clone());
        put(out, "content_category", self.category.clone());
    }
}

/// Property keys every connector maps to its own fields (amounts, ids, products, query),
/// so they are not repeated as custom parameters.
pub(crate) const COMMERCE_KEYS: &[&str] = &[
    "revenue",
    "total",
    "value",
    "currency",
    "order_id",
    "products",
    "query",
    "product_id",
    "sku",
    "id",
    "price",
    "quantity",
];

impl Commerce {
    /// [`Commerce::read`]'s `value` and `currency` alone, without the products list: ingest
    /// checks them for every purchase routed to Meta (building the whole of it was 1 % of
    /// `serve`'s core under load).
    pub fn value_and_currency(properties: &Value) -> (Option<Number>, Option<String>) {
        let empty = Map::new();
        let props = properties.as_object().unwrap_or(&empty);
        let lists_products = props
            .get("products")
            .and_then(Value::as_array)
            .is_some_and(|list| list.iter().any(Value::is_object));
        let single = !lists_products && is_single_product(props);
        let value = order_value(props, || single.then(|| Product::read(props)));
        let currency = first_text(props, &["currency"]).map(|c| c.to_ascii_uppercase());
        (value, currency)
    }

    pub fn read(properties: &Value) -> Self {
        let empty = Map::new();
        let props = properties.as_object().unwrap_or(&empty);
        let mut products: Vec<Product> = props
            .get("products")
            .and_then(Value::as_array)
            .map(|list| {
                list.iter()
                    .filter_map(Value::as_object)
                    .map(Product::read)
                    .collect()
            })
            .unwrap_or_default();
        let single = products.is_empty() && is_single_product(props);
        if single {
            products.push(Product::read(props));
        }
        let value = order_value(props, || products.first().filter(|_| single).cloned());
        Self {
            value,
            currency: first_text(props, &["currency"]).map(|c| c.to_ascii_uppercase()),
            order_id: first_text(props, &["order_id"]),
            products,
            query: first_text(props, &["query"]),
            coupon: first_text(props, &["coupon"]),
            shipping: first_number(props, &["shipping"]),
            tax: first_number(props, &["tax"]),
            affiliation: first_text(props, &["affiliation"]),
            category: first_text(props, &["category"]),
            name: first_text(props, &["name"]),
        }
    }
}

/// Whether the properties describe one product themselves (a `Product Added`), when they
/// list no products.
fn is_single_product(props: &Map<String, Value>) -> bool {
    props.contains_key("product_id") || props.contains_key("sku")
}

/// The order's value: `revenue`, `total` or `value`, else the price times the units of the
/// single product the event is (`single`, asked only then).
fn order_value(
    props: &Map<String, Value>,
    single: impl FnOnce() -> Option<Product>,
) -> Option<Number> {
    first_number(props, &["revenue", "total", "value"]).or_else(|| {
        let p = single()?;
        let price = p.price.as_ref()?.as_f64()?;
        Number::from_f64(price * p.units() as f64)
    })
}
