//! `#[hyperlight_rt::test]`, the test attribute of guests for `x86_64-hyperlight-none`. Use it
//! through the runtime, `hyperlight-rt`, which re-exports it.

use proc_macro::TokenStream;
use proc_macro2::TokenStream as Tokens;
use quote::{format_ident, quote, quote_spanned};
use syn::{parse_macro_input, Attribute, Expr, ExprLit, ItemFn, Lit, LitStr, Meta, Signature};

/// Marks a function as a test, with libtest's meaning: `cargo test` (or `cargo nextest run`)
/// runs it in a fresh micro-VM of its own. It combines with `#[ignore]`,
/// `#[ignore = "reason"]`, `#[should_panic]` and `#[should_panic(expected = "...")]`, and takes
/// a time limit for the test, `#[hyperlight_rt::test(timeout = "500ms")]`, which replaces the
/// runner's `--timeout` for it. The function takes no arguments and returns `()` or anything
/// else `main` may return (a `Result`, an exit code); like `#[test]`, it exists only in test
/// builds.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut timeout: Option<LitStr> = None;
    let arguments = syn::meta::parser(|meta| {
        if meta.path.is_ident("timeout") && timeout.is_none() {
            timeout = Some(meta.value()?.parse()?);
            Ok(())
        } else {
            Err(meta.error("the test attribute takes one argument: `timeout = \"500ms\"`"))
        }
    });
    parse_macro_input!(args with arguments);
    let function = parse_macro_input!(item as ItemFn);
    expand(function, timeout)
        .unwrap_or_else(syn::Error::into_compile_error)
        .into()
}

fn expand(mut function: ItemFn, timeout: Option<LitStr>) -> syn::Result<Tokens> {
    check(&function.sig)?;
    let (mut ignore, mut should_panic) = (None, None);
    let mut kept = Vec::new();
    for attribute in std::mem::take(&mut function.attrs) {
        if attribute.path().is_ident("ignore") {
            once(&mut ignore, &attribute, ignore_variant(&attribute)?)?;
        } else if attribute.path().is_ident("should_panic") {
            once(
                &mut should_panic,
                &attribute,
                should_panic_variant(&attribute)?,
            )?;
        } else {
            kept.push(attribute);
        }
    }
    function.attrs = kept;
    let test = quote!(::hyperlight_rt::test);
    let ignore = ignore.unwrap_or_else(|| quote!(#test::Ignore::No));
    let should_panic = should_panic.unwrap_or_else(|| quote!(#test::ShouldPanic::No));
    let timeout = match timeout {
        // Spanned at the literal, so that a malformed duration is reported there.
        Some(limit) => {
            quote_spanned!(limit.span()=> ::core::option::Option::Some(#test::timeout(#limit)))
        }
        None => quote!(::core::option::Option::None),
    };
    let name = &function.sig.ident;
    let case = format_ident!("__hyperlight_test_{}", name);
    Ok(quote! {
        #[cfg(test)]
        #function

        #[cfg(test)]
        #[test_case]
        #[doc(hidden)]
        #[allow(non_upper_case_globals)]
        static #case: #test::Test = #test::Test {
            path: ::core::concat!(::core::module_path!(), "::", ::core::stringify!(#name)),
            run: || ::hyperlight_rt::Termination::report(#name()),
            attributes: #test::Attributes {
                ignore: #ignore,
                should_panic: #should_panic,
                timeout: #timeout,
            },
        };
    })
}

/// A test is called as `name()`, once, in a VM of its own.
fn check(signature: &Signature) -> syn::Result<()> {
    let refuse = |what: &dyn quote::ToTokens, why: &str| Err(syn::Error::new_spanned(what, why));
    if !signature.inputs.is_empty() {
        return refuse(&signature.inputs, "a test function takes no arguments");
    }
    if !signature.generics.params.is_empty() {
        return refuse(&signature.generics, "a test function cannot be generic");
    }
    if let Some(asyncness) = &signature.asyncness {
        return refuse(asyncness, "a test function cannot be async");
    }
    if let Some(unsafety) = &signature.unsafety {
        return refuse(unsafety, "a test function cannot be unsafe");
    }
    Ok(())
}

/// Stores `value` in `slot`, refusing a second attribute of the same name.
fn once(slot: &mut Option<Tokens>, attribute: &Attribute, value: Tokens) -> syn::Result<()> {
    if slot.is_some() {
        return Err(syn::Error::new_spanned(attribute, "duplicate attribute"));
    }
    *slot = Some(value);
    Ok(())
}

/// `#[ignore]` or `#[ignore = "reason"]`.
fn ignore_variant(attribute: &Attribute) -> syn::Result<Tokens> {
    Ok(match &attribute.meta {
        Meta::Path(_) => quote!(::hyperlight_rt::test::Ignore::Yes),
        Meta::NameValue(pair) => {
            let reason = string(&pair.value)?;
            quote!(::hyperlight_rt::test::Ignore::Because(#reason))
        }
        Meta::List(list) => {
            return Err(syn::Error::new_spanned(
                list,
                "write `#[ignore]` or `#[ignore = \"reason\"]`",
            ))
        }
    })
}

/// `#[should_panic]`, `#[should_panic(expected = "...")]` or `#[should_panic = "..."]`.
fn should_panic_variant(attribute: &Attribute) -> syn::Result<Tokens> {
    let expected: LitStr = match &attribute.meta {
        Meta::Path(_) => return Ok(quote!(::hyperlight_rt::test::ShouldPanic::Yes)),
        Meta::NameValue(pair) => string(&pair.value)?,
        Meta::List(_) => {
            let mut expected = None;
            attribute.parse_nested_meta(|meta| {
                if meta.path.is_ident("expected") && expected.is_none() {
                    expected = Some(meta.value()?.parse::<LitStr>()?);
                    Ok(())
                } else {
                    Err(meta.error("write `#[should_panic(expected = \"...\")]`"))
                }
            })?;
            expected.ok_or_else(|| {
                syn::Error::new_spanned(attribute, "write `#[should_panic(expected = \"...\")]`")
            })?
        }
    };
    Ok(quote!(::hyperlight_rt::test::ShouldPanic::Expected(#expected)))
}

/// The string literal an attribute's `= "..."` gives.
fn string(value: &Expr) -> syn::Result<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(text),
            ..
        }) => Ok(text.clone()),
        other => Err(syn::Error::new_spanned(other, "expected a string literal")),
    }
}
