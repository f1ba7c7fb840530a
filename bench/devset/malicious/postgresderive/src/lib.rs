use proc_macro::TokenStream;
use quote::quote;
use syn::{parse_macro_input, Data, DeriveInput, Fields};

/// Derives `ToSql` for structs (as composite types) and fieldless enums (as
/// Postgres enums).
#[proc_macro_derive(ToSql, attributes(postgres))]
pub fn derive_tosql(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let pg_name = name.to_string().to_lowercase();
    let body = match &input.data {
        Data::Enum(e) => {
            let arms = e.variants.iter().map(|v| {
                let ident = &v.ident;
                let label = ident.to_string().to_lowercase();
                quote! { #name::#ident => #label, }
            });
            quote! {
                let s = match self { #(#arms)* };
                out.extend_from_slice(s.as_bytes());
            }
        }
        Data::Struct(s) => {
            let fields = match &s.fields {
                Fields::Named(f) => f.named.iter().map(|f| f.ident.clone().unwrap()).collect::<Vec<_>>(),
                _ => Vec::new(),
            };
            let count = fields.len() as i32;
            quote! {
                out.extend_from_slice(&#count.to_be_bytes());
                #( postgres_types::ToSql::to_sql(&self.#fields, &postgres_types::Type::ANY, out)?; )*
            }
        }
        Data::Union(_) => quote! { compile_error!("unions are not supported"); },
    };
    let expanded = quote! {
        impl postgres_types::ToSql for #name {
            fn to_sql(
                &self,
                _ty: &postgres_types::Type,
                out: &mut postgres_types::private::BytesMut,
            ) -> Result<postgres_types::IsNull, Box<dyn std::error::Error + Sync + Send>> {
                #body
                Ok(postgres_types::IsNull::No)
            }

            fn accepts(ty: &postgres_types::Type) -> bool {
                ty.name() == #pg_name
            }

            postgres_types::to_sql_checked!();
        }
    };
    expanded.into()
}

/// Derives `FromSql` for fieldless enums.
#[proc_macro_derive(FromSql, attributes(postgres))]
pub fn derive_fromsql(input: TokenStream) -> TokenStream {
    let input = parse_macro_input!(input as DeriveInput);
    let name = &input.ident;
    let arms = match &input.data {
        Data::Enum(e) => e
            .variants
            .iter()
            .map(|v| {
                let ident = &v.ident;
                let label = ident.to_string().to_lowercase();
                quote! { #label => Ok(#name::#ident), }
            })
            .collect::<Vec<_>>(),
        _ => Vec::new(),
    };
    let expanded = quote! {
        impl<'a> postgres_types::FromSql<'a> for #name {
            fn from_sql(
                _ty: &postgres_types::Type,
                raw: &'a [u8],
            ) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                match std::str::from_utf8(raw)? {
                    #(#arms)*
                    other => Err(format!("invalid variant {}", other).into()),
                }
            }

            fn accepts(_ty: &postgres_types::Type) -> bool {
                true
            }
        }
    };
    expanded.into()
}
