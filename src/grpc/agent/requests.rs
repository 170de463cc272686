//! AgentService requests as domain values. The conversions check everything
//! about a request's shape that needs no configuration or state (a message
//! that is not blank, id formats, the contract's fixed ranges, repeats), every
//! problem named by its field path; the orchestrator checks the rest and names
//! its fields by [`TurnField`], whose paths are also here.

use crate::agent::error::TurnField;
use crate::agent::turn::TurnRequest;
use crate::config::Tier;
use crate::error::{AppError, FieldPath, FieldProblem};
use crate::ids::{CollectionName, SessionId};
use crate::llm::catalog::ModelChoice;
use crate::pb;

/// Collections one turn may search (the contract's limit).
pub const MAX_COLLECTIONS: usize = 8;

impl FieldPath for TurnField {
    fn field_path(&self) -> String {
        match self {
            TurnField::Message => "message".to_owned(),
            TurnField::Model => "options.model".to_owned(),
            TurnField::MaxOutputTokens => "options.max_output_tokens".to_owned(),
            TurnField::Tool(i) => format!("options.tools[{i}]"),
            TurnField::Collections => "options.collections".to_owned(),
        }
    }
}

impl TryFrom<pb::ChatRequest> for TurnRequest {
    type Error = AppError;

    fn try_from(request: pb::ChatRequest) -> Result<Self, Self::Error> {
        turn_request(request.message, request.session_id, request.options)
    }
}

impl TryFrom<pb::AskRequest> for TurnRequest {
    type Error = AppError;

    fn try_from(request: pb::AskRequest) -> Result<Self, Self::Error> {
        turn_request(request.message, request.session_id, request.options)
    }
}

impl TryFrom<pb::GetSessionRequest> for SessionId {
    type Error = AppError;

    fn try_from(request: pb::GetSessionRequest) -> Result<Self, Self::Error> {
        required_session(request.session_id)
    }
}

impl TryFrom<pb::DeleteSessionRequest> for SessionId {
    type Error = AppError;

    fn try_from(request: pb::DeleteSessionRequest) -> Result<Self, Self::Error> {
        required_session(request.session_id)
    }
}

fn required_session(value: String) -> Result<SessionId, AppError> {
    if value.is_empty() {
        return Err(AppError::invalid("session_id", "is required"));
    }
    SessionId::try_from(value).map_err(|err| AppError::invalid("session_id", err.to_string()))
}

/// The fields Chat and Ask share, as a turn request.
fn turn_request(
    message: String,
    session_id: String,
    options: Option<pb::TurnOptions>,
) -> Result<TurnRequest, AppError> {
    let options = options.unwrap_or_default();
    let mut problems = Vec::new();
    if message.trim().is_empty() {
        problems.push(FieldProblem::new("message", "must not be empty"));
    }
    let session = match session_id.as_str() {
        "" => None,
        _ => SessionId::try_from(session_id)
            .map_err(|err| problems.push(FieldProblem::new("session_id", err.to_string())))
            .ok(),
    };
    let model = model_choice(options.model_choice, &mut problems);
    if let Some(temperature) = options.temperature
        && !(0.0..=2.0).contains(&temperature)
    {
        problems.push(FieldProblem::new(
            "options.temperature",
            "must be between 0 and 2",
        ));
    }
    for (i, name) in options.tools.iter().enumerate() {
        if options.tools[..i].contains(name) {
            problems.push(FieldProblem::new(
                format!("options.tools[{i}]"),
                format!("{name:?} is listed twice"),
            ));
        }
    }
    let collections = collections(options.collections, &mut problems);
    if !problems.is_empty() {
        return Err(AppError::InvalidArgument(problems));
    }
    Ok(TurnRequest {
        message,
        session,
        model,
        max_output_tokens: options.max_output_tokens,
        temperature: options.temperature,
        tools: options.tools,
        collections,
    })
}

fn model_choice(
    choice: Option<pb::turn_options::ModelChoice>,
    problems: &mut Vec<FieldProblem>,
) -> ModelChoice {
    use pb::turn_options::ModelChoice as Choice;
    match choice {
        None => ModelChoice::Default,
        Some(Choice::Model(name)) if name.is_empty() => {
            problems.push(FieldProblem::new(
                "options.model",
                "must not be empty when set",
            ));
            ModelChoice::Default
        }
        Some(Choice::Model(name)) => ModelChoice::Named(name),
        Some(Choice::Tier(tier)) => match pb::ModelTier::try_from(tier) {
            Ok(pb::ModelTier::Unspecified) => ModelChoice::Default,
            Ok(pb::ModelTier::Fast) => ModelChoice::Tier(Tier::Fast),
            Ok(pb::ModelTier::Balanced) => ModelChoice::Tier(Tier::Balanced),
            Ok(pb::ModelTier::Strong) => ModelChoice::Tier(Tier::Strong),
            Err(_) => {
                problems.push(FieldProblem::new(
                    "options.tier",
                    format!("unknown tier {tier}"),
                ));
                ModelChoice::Default
            }
        },
    }
}

/// The request's collections: at most [`MAX_COLLECTIONS`], valid, distinct.
fn collections(names: Vec<String>, problems: &mut Vec<FieldProblem>) -> Vec<CollectionName> {
    if names.len() > MAX_COLLECTIONS {
        problems.push(FieldProblem::new(
            "options.collections",
            format!(
                "names {} collections; at most {MAX_COLLECTIONS}",
                names.len()
            ),
        ));
    }
    let mut valid: Vec<CollectionName> = Vec::with_capacity(names.len());
    for (i, name) in names.into_iter().enumerate() {
        let field = format!("options.collections[{i}]");
        match CollectionName::try_from(name) {
            Err(err) => problems.push(FieldProblem::new(field, err.to_string())),
            Ok(name) if valid.contains(&name) => {
                problems.push(FieldProblem::new(
                    field,
                    format!("{name:?} is listed twice"),
                ));
            }
            Ok(name) => valid.push(name),
        }
    }
    valid
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::grpc::invalid_fields as fields;

    #[test]
    fn a_well_formed_chat_request_converts() {
        let request = pb::ChatRequest {
            message: "hi".into(),
            session_id: "s-1".into(),
            options: Some(pb::TurnOptions {
                model_choice: Some(pb::turn_options::ModelChoice::Tier(
                    pb::ModelTier::Fast.into(),
                )),
                tools: vec!["current_time".into()],
                collections: vec!["docs".into()],
                temperature: Some(0.5),
                ..Default::default()
            }),
        };
        let turn = TurnRequest::try_from(request).unwrap();
        assert_eq!(turn.session, Some(SessionId::try_from("s-1").unwrap()));
        assert_eq!(turn.model, ModelChoice::Tier(Tier::Fast));
        assert_eq!(turn.collections[0].as_str(), "docs");
    }

    #[test]
    fn every_shape_problem_is_named_by_its_path() {
        let request = pb::AskRequest {
            message: "  ".into(),
            session_id: "a/b".into(),
            options: Some(pb::TurnOptions {
                model_choice: Some(pb::turn_options::ModelChoice::Model(String::new())),
                temperature: Some(f32::NAN),
                tools: vec!["x".into(), "x".into()],
                collections: vec!["ok".into(), "bad name".into(), "ok".into()],
                ..Default::default()
            }),
        };
        assert_eq!(
            fields(TurnRequest::try_from(request).unwrap_err()),
            [
                "message",
                "session_id",
                "options.model",
                "options.temperature",
                "options.tools[1]",
                "options.collections[1]",
                "options.collections[2]",
            ]
        );
        let many = pb::TurnOptions {
            collections: (0..9).map(|i| format!("c{i}")).collect(),
            ..Default::default()
        };
        let request = pb::ChatRequest {
            message: "hi".into(),
            session_id: String::new(),
            options: Some(many),
        };
        assert_eq!(
            fields(TurnRequest::try_from(request).unwrap_err()),
            ["options.collections"]
        );
    }

    #[test]
    fn session_requests_need_a_valid_id() {
        let missing = pb::GetSessionRequest {
            session_id: String::new(),
        };
        assert_eq!(
            fields(SessionId::try_from(missing).unwrap_err()),
            ["session_id"]
        );
        let bad = pb::DeleteSessionRequest {
            session_id: "a b".into(),
        };
        assert_eq!(
            fields(SessionId::try_from(bad).unwrap_err()),
            ["session_id"]
        );
    }
}
