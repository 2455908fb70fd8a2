//! `#[hyperlight_rt::test]`, the test attribute of guests for `x86_64-hyperlight-none`. Use it
//! through the runtime, `hyperlight-rt`, which re-exports it.
//!
//! Written against `proc_macro` alone: every guest's build compiles this crate, and syn would
//! add seconds to each cold build for an attribute this small.

use proc_macro::{Delimiter, Group, Literal, Span, TokenStream, TokenTree};

/// Marks a function as a test, with libtest's meaning: `cargo test` (or `cargo nextest run`)
/// runs it in a fresh micro-VM of its own. It combines with `#[ignore]`,
/// `#[ignore = "reason"]`, `#[should_panic]` and `#[should_panic(expected = "...")]`, and takes
/// a time limit for the test, `#[hyperlight_rt::test(timeout = "500ms")]`, which replaces the
/// runner's `--timeout` for it. The function takes no arguments and returns `()` or anything
/// else `main` may return (a `Result`, an exit code); like `#[test]`, it exists only in test
/// builds.
#[proc_macro_attribute]
pub fn test(args: TokenStream, item: TokenStream) -> TokenStream {
    expand(args, item).unwrap_or_else(Error::into_compile_error)
}

const TEST: &str = "::hyperlight_rt::test";

/// A compile error at `span`.
struct Error {
    span: Span,
    message: String,
}

impl Error {
    fn at(span: Span, message: &str) -> Error {
        Error {
            span,
            message: message.to_owned(),
        }
    }

    fn into_compile_error(self) -> TokenStream {
        let message = TokenTree::Literal(Literal::string(&self.message));
        let call = code("::core::compile_error!")
            .into_iter()
            .chain([group(Delimiter::Parenthesis, message.into())]);
        respan(call.chain(code(";")).collect(), self.span)
    }
}

fn expand(args: TokenStream, item: TokenStream) -> Result<TokenStream, Error> {
    let timeout = timeout_argument(args)?;
    let mut tokens: Vec<TokenTree> = item.into_iter().collect();
    let (mut ignore, mut should_panic) = (None, None);
    let mut kept = Vec::new();
    let mut at = 0;
    // Outer attributes: `#` and a bracketed group each.
    while let [TokenTree::Punct(hash), TokenTree::Group(body), ..] = &tokens[at..] {
        if hash.as_char() != '#' || body.delimiter() != Delimiter::Bracket {
            break;
        }
        let content: Vec<TokenTree> = body.stream().into_iter().collect();
        match content.first() {
            Some(TokenTree::Ident(name)) if name.to_string() == "ignore" => once(
                &mut ignore,
                body.span(),
                ignore_variant(&content, body.span())?,
            )?,
            Some(TokenTree::Ident(name)) if name.to_string() == "should_panic" => once(
                &mut should_panic,
                body.span(),
                should_panic_variant(&content, body.span())?,
            )?,
            _ => kept.extend_from_slice(&tokens[at..at + 2]),
        }
        at += 2;
    }
    let function = tokens.split_off(at);
    let (name, name_span) = check_signature(&function)?;
    // Where libtest says a test is: its name's first character.
    let location = Literal::string(&format!(
        "{}:{}:{}",
        name_span.file(),
        name_span.line(),
        name_span.column()
    ));
    let case = format!(
        "__hyperlight_test_{}",
        name.strip_prefix("r#").unwrap_or(&name)
    );
    let ignore = ignore.unwrap_or_else(|| code(&format!("{TEST}::Ignore::No")));
    let should_panic = should_panic.unwrap_or_else(|| code(&format!("{TEST}::ShouldPanic::No")));
    let timeout = match timeout {
        // Spanned at the literal, so that a malformed duration is reported there.
        Some(limit) => {
            let span = limit.span();
            let call = code(&format!("{TEST}::timeout")).into_iter().chain([group(
                Delimiter::Parenthesis,
                TokenTree::Literal(limit).into(),
            )]);
            let some = code("::core::option::Option::Some")
                .into_iter()
                .chain([group(Delimiter::Parenthesis, call.collect())]);
            respan(some.collect(), span)
        }
        None => code("::core::option::Option::None"),
    };
    let attributes = [
        code("ignore:"),
        ignore,
        code(", should_panic:"),
        should_panic,
        code(", timeout:"),
        timeout,
        code(&format!(
            ", location: ::core::option::Option::Some({location})"
        )),
    ];
    let fields = code(&format!(
        "path: ::core::concat!(::core::module_path!(), \"::\", ::core::stringify!({name})), \
         run: || ::hyperlight_rt::Termination::report({name}()), \
         attributes: {TEST}::Attributes"
    ))
    .into_iter()
    .chain([group(Delimiter::Brace, attributes.into_iter().collect())]);
    let registration = code(&format!(
        "#[cfg(test)] #[test_case] #[doc(hidden)] #[allow(non_upper_case_globals)] \
         static {case}: {TEST}::Test = {TEST}::Test"
    ))
    .into_iter()
    .chain([group(Delimiter::Brace, fields.collect())])
    .chain(code(";"));
    let mut expanded = code("#[cfg(test)]");
    expanded.extend(kept);
    expanded.extend(function);
    expanded.extend(registration);
    Ok(expanded)
}

/// `timeout = "500ms"`, the attribute's one optional argument.
fn timeout_argument(args: TokenStream) -> Result<Option<Literal>, Error> {
    let args: Vec<TokenTree> = args.into_iter().collect();
    match args.as_slice() {
        [] => Ok(None),
        [TokenTree::Ident(key), TokenTree::Punct(eq), value]
            if key.to_string() == "timeout" && eq.as_char() == '=' =>
        {
            string_literal(value).map(Some)
        }
        other => Err(Error::at(
            other[0].span(),
            "the test attribute takes one argument: `timeout = \"500ms\"`",
        )),
    }
}

/// Refuses what cannot be called as `name()`, once, in a VM of its own; returns the name and
/// where it is.
fn check_signature(function: &[TokenTree]) -> Result<(String, Span), Error> {
    let fn_at = function
        .iter()
        .position(|token| matches!(token, TokenTree::Ident(ident) if ident.to_string() == "fn"))
        .ok_or_else(|| Error::at(Span::call_site(), "the test attribute goes on a function"))?;
    for qualifier in &function[..fn_at] {
        if let TokenTree::Ident(ident) = qualifier {
            match ident.to_string().as_str() {
                "async" => return Err(Error::at(ident.span(), "a test function cannot be async")),
                "unsafe" => {
                    return Err(Error::at(ident.span(), "a test function cannot be unsafe"))
                }
                _ => {}
            }
        }
    }
    let Some(TokenTree::Ident(name)) = function.get(fn_at + 1) else {
        return Err(Error::at(
            function[fn_at].span(),
            "a test function needs a name",
        ));
    };
    match function.get(fn_at + 2) {
        Some(TokenTree::Punct(open)) if open.as_char() == '<' => {
            Err(Error::at(open.span(), "a test function cannot be generic"))
        }
        Some(TokenTree::Group(inputs)) if !inputs.stream().is_empty() => Err(Error::at(
            inputs.span(),
            "a test function takes no arguments",
        )),
        _ => Ok((name.to_string(), name.span())),
    }
}

/// Stores `value` in `slot`, refusing a second attribute of the same name.
fn once(slot: &mut Option<TokenStream>, span: Span, value: TokenStream) -> Result<(), Error> {
    if slot.is_some() {
        return Err(Error::at(span, "duplicate attribute"));
    }
    *slot = Some(value);
    Ok(())
}

/// `#[ignore]` or `#[ignore = "reason"]`, given the tokens inside the brackets.
fn ignore_variant(content: &[TokenTree], span: Span) -> Result<TokenStream, Error> {
    match content {
        [_] => Ok(code(&format!("{TEST}::Ignore::Yes"))),
        [_, TokenTree::Punct(eq), reason] if eq.as_char() == '=' => {
            let reason = string_literal(reason)?;
            Ok(code(&format!("{TEST}::Ignore::Because({reason})")))
        }
        _ => Err(Error::at(
            span,
            "write `#[ignore]` or `#[ignore = \"reason\"]`",
        )),
    }
}

/// `#[should_panic]`, `#[should_panic(expected = "...")]` or `#[should_panic = "..."]`,
/// given the tokens inside the brackets.
fn should_panic_variant(content: &[TokenTree], span: Span) -> Result<TokenStream, Error> {
    let refuse = || Error::at(span, "write `#[should_panic(expected = \"...\")]`");
    let expected = match content {
        [_] => return Ok(code(&format!("{TEST}::ShouldPanic::Yes"))),
        [_, TokenTree::Punct(eq), expected] if eq.as_char() == '=' => string_literal(expected)?,
        [_, TokenTree::Group(list)] if list.delimiter() == Delimiter::Parenthesis => {
            let list: Vec<TokenTree> = list.stream().into_iter().collect();
            match list.as_slice() {
                [TokenTree::Ident(key), TokenTree::Punct(eq), expected]
                    if key.to_string() == "expected" && eq.as_char() == '=' =>
                {
                    string_literal(expected)?
                }
                _ => return Err(refuse()),
            }
        }
        _ => return Err(refuse()),
    };
    Ok(code(&format!("{TEST}::ShouldPanic::Expected({expected})")))
}

/// The token if it is a string literal (plain or raw).
fn string_literal(token: &TokenTree) -> Result<Literal, Error> {
    match token {
        TokenTree::Literal(literal) => {
            let text = literal.to_string();
            if text.starts_with('"') || text.starts_with("r\"") || text.starts_with("r#") {
                Ok(literal.clone())
            } else {
                Err(Error::at(literal.span(), "expected a string literal"))
            }
        }
        other => Err(Error::at(other.span(), "expected a string literal")),
    }
}

/// Rust source as tokens, at the call site.
fn code(source: &str) -> TokenStream {
    source.parse().expect("the macro writes valid Rust")
}

fn group(delimiter: Delimiter, stream: TokenStream) -> TokenTree {
    TokenTree::Group(Group::new(delimiter, stream))
}

/// `tokens`, all of them (nested ones too) at `span`.
fn respan(tokens: TokenStream, span: Span) -> TokenStream {
    tokens
        .into_iter()
        .map(|token| match token {
            TokenTree::Group(inner) => {
                let mut spanned = Group::new(inner.delimiter(), respan(inner.stream(), span));
                spanned.set_span(span);
                TokenTree::Group(spanned)
            }
            mut other => {
                other.set_span(span);
                other
            }
        })
        .collect()
}
