//! `#[command]`: a Tauri command that also describes itself (its name, the arguments the UI passes and what it
//! answers) so that the UI's TypeScript calls are generated from the Rust signature instead of written again.
//!
//! The description is a function `__binding_<name>` beside the command; [`commands!`] lists the commands once,
//! for Tauri's invoke handler and for the generator.

use proc_macro::TokenStream;
use quote::{format_ident, quote};
use syn::punctuated::Punctuated;
use syn::{FnArg, GenericArgument, ItemFn, Pat, PathArguments, ReturnType, Token, Type, parse_macro_input};

/// Arguments Tauri injects rather than the caller sends.
const INJECTED: [&str; 4] = ["State", "AppHandle", "Window", "WebviewWindow"];

fn last_segment(ty: &Type) -> Option<&syn::PathSegment> {
    match ty {
        Type::Path(p) => p.path.segments.last(),
        Type::Reference(r) => last_segment(&r.elem),
        _ => None,
    }
}

/// What a call resolves with: `T` of `Result<T, E>` (an `Err` rejects the call's promise), else the type.
fn resolves_with(output: &ReturnType) -> proc_macro2::TokenStream {
    let ReturnType::Type(_, ty) = output else { return quote!(()) };
    if let Some(seg) = last_segment(ty).filter(|s| s.ident == "Result")
        && let PathArguments::AngleBracketed(args) = &seg.arguments
        && let Some(GenericArgument::Type(ok)) = args.args.first()
    {
        return quote!(#ok);
    }
    quote!(#ty)
}

fn camel_case(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

#[proc_macro_attribute]
pub fn command(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = proc_macro2::TokenStream::from(attr);
    let function = parse_macro_input!(item as ItemFn);
    let name = &function.sig.ident;
    let binding = format_ident!("__binding_{}", name);
    let docs: Vec<String> = function
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("doc"))
        .filter_map(|a| match &a.meta {
            syn::Meta::NameValue(nv) => match &nv.value {
                syn::Expr::Lit(syn::ExprLit { lit: syn::Lit::Str(s), .. }) => Some(s.value().trim().to_owned()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let doc = docs.join(" ");
    let mut arg_names = Vec::new();
    let mut arg_types = Vec::new();
    for input in &function.sig.inputs {
        let FnArg::Typed(typed) = input else { continue };
        if last_segment(&typed.ty).is_some_and(|s| INJECTED.iter().any(|i| s.ident == i)) {
            continue;
        }
        let Pat::Ident(ident) = &*typed.pat else {
            return syn::Error::new_spanned(&typed.pat, "a command's arguments are plain names")
                .to_compile_error()
                .into();
        };
        // Tauri takes the arguments by their camelCase names.
        arg_names.push(camel_case(&ident.ident.to_string()));
        arg_types.push(typed.ty.clone());
    }
    let resolves = resolves_with(&function.sig.output);
    let name_text = name.to_string();
    let function_name = camel_case(&name_text);
    let tauri_command = if attr.is_empty() { quote!(#[tauri::command]) } else { quote!(#[tauri::command(#attr)]) };
    quote! {
        #tauri_command
        #function

        // Only the generator of the UI's bindings (a test, as ts-rs's exports are) reads the description.
        #[cfg(test)]
        #[doc(hidden)]
        pub fn #binding(cfg: &ts_rs::Config) -> crate::bindings::CommandBinding {
            crate::bindings::CommandBinding {
                name: #name_text,
                function: #function_name,
                doc: #doc,
                args: vec![#((#arg_names, crate::bindings::TsType::of::<#arg_types>(cfg))),*],
                resolves: crate::bindings::TsType::of::<#resolves>(cfg),
            }
        }
    }
    .into()
}

/// `commands!(module: a, b, c)`: `invoke_handler!()` (Tauri's handler of those commands) and
/// `command_bindings(cfg)` (their descriptions), from one list.
#[proc_macro]
pub fn commands(input: TokenStream) -> TokenStream {
    struct List {
        module: syn::Path,
        names: Punctuated<syn::Ident, Token![,]>,
    }
    impl syn::parse::Parse for List {
        fn parse(input: syn::parse::ParseStream<'_>) -> syn::Result<Self> {
            let module = input.parse()?;
            input.parse::<Token![:]>()?;
            Ok(Self { module, names: Punctuated::parse_terminated(input)? })
        }
    }
    let List { module, names } = parse_macro_input!(input as List);
    let names: Vec<_> = names.into_iter().collect();
    let bindings: Vec<_> = names.iter().map(|n| format_ident!("__binding_{}", n)).collect();
    quote! {
        macro_rules! invoke_handler {
            () => { tauri::generate_handler![#(#module::#names),*] };
        }
        pub(crate) use invoke_handler;

        /// Every command the UI can call, as the generator of its bindings reads them.
        #[cfg(test)]
        pub fn command_bindings(cfg: &ts_rs::Config) -> Vec<CommandBinding> {
            vec![#(#module::#bindings(cfg)),*]
        }
    }
    .into()
}
