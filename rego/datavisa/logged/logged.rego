# METADATA
# title: Logged decisions
# description: |
#   Each decision the engine asks, with the decision-log mask for it, in one evaluation:
#   the engine records every decision before it answers, masked by the same policy OPA
#   applies to its own decision log, without a second round trip. The decision itself is
#   exactly the document at data.datavisa.<name>.decision.
#   Output: {decision, mask}
package datavisa.logged

import data.datavisa.access
import data.datavisa.approval
import data.datavisa.breakglass
import data.datavisa.enrolment
import data.datavisa.extension
import data.datavisa.filing
import data.datavisa.gateway
import data.datavisa.idp
import data.datavisa.lifecycle
import data.datavisa.offline
import data.datavisa.provision
import data.datavisa.request
import data.datavisa.step_up
import data.datavisa.supervision
import data.datavisa.transfer
import data.datavisa.transfer_check
import data.datavisa.transfer_request
import data.system.log

# METADATA
# title: Access
# description: The access decision and its mask.
access_decision := _logged(access.decision, "datavisa/access/decision")

# METADATA
# title: Access, coalesced
# description: |
#   access_decision for each input in input.batch, in order: the engine coalesces the
#   access checks that arrive together into one query. Input: {batch: [input, ...]}
access_decisions := [logged | some asked in input.batch; logged := access_decision with input as asked]

# METADATA
# title: Gateway
# description: |
#   The gateway decision (which resource and action a request a gateway asks about means)
#   and its mask; the engine records it when it denies, the access decision otherwise.
gateway_decision := _logged(gateway.decision, "datavisa/gateway/decision")

# METADATA
# title: Identity provider
# description: The API role a person the IdP signed in has (datavisa.idp) and its mask.
idp_decision := _logged(idp.decision, "datavisa/idp/decision")

# METADATA
# title: Step-up
# description: Whether the caller's sign-in does for a step no other decision judges, and its mask.
step_up_decision := _logged(step_up.decision, "datavisa/step_up/decision")

# METADATA
# title: Step-up enrolment
# description: Whether a person may enrol (or use) a console step-up method, and its mask.
enrolment_decision := _logged(enrolment.decision, "datavisa/enrolment/decision")

# METADATA
# title: Request
# description: The request decision and its mask.
request_decision := _logged(request.decision, "datavisa/request/decision")

# METADATA
# title: Approval
# description: The approval decision and its mask.
approval_decision := _logged(approval.decision, "datavisa/approval/decision")

# METADATA
# title: Extension
# description: The extension decision and its mask.
extension_decision := _logged(extension.decision, "datavisa/extension/decision")

# METADATA
# title: Break-glass
# description: The break-glass decision and its mask.
breakglass_decision := _logged(breakglass.decision, "datavisa/breakglass/decision")

# METADATA
# title: Filing
# description: The decision on recording a filing (a transfer impact dossier) and its mask.
filing_decision := _logged(filing.decision, "datavisa/filing/decision")

# METADATA
# title: Lifecycle
# description: The lifecycle-permission decision and its mask.
lifecycle_decision := _logged(lifecycle.decision, "datavisa/lifecycle/decision")

# METADATA
# title: Offline ending, logged
# description: datavisa.offline.decision with its decision-log mask.
offline_decision := _logged(offline.decision, "datavisa/offline/decision")

# METADATA
# title: Provisioning
# description: The provisioning decision (what a grant becomes in its data system) and its mask.
provision_decision := _logged(provision.decision, "datavisa/provision/decision")

# METADATA
# title: Supervision
# description: Whether a person may supervise a grant now (datavisa.supervision) and its mask.
supervision_decision := _logged(supervision.decision, "datavisa/supervision/decision")

# METADATA
# title: Transfer
# description: The transfer decision and its mask.
transfer_decision := _logged(transfer.decision, "datavisa/transfer/decision")

# METADATA
# title: Transfer request
# description: The transfer request decision and its mask.
transfer_request_decision := _logged(transfer_request.decision, "datavisa/transfer_request/decision")

# METADATA
# title: Transfer check
# description: The transfer check decision (a pipeline's question) and its mask.
transfer_check_decision := _logged(transfer_check.decision, "datavisa/transfer_check/decision")

# METADATA
# title: Transfer check, coalesced
# description: |
#   transfer_check_decision for each input in input.batch, in order: the engine coalesces
#   the transfer checks that arrive together, as access checks. Input: {batch: [input, ...]}
transfer_check_decisions := [logged | some asked in input.batch; logged := transfer_check_decision with input as asked]

# METADATA
# title: Session statements' masks
# description: |
#   The decision-log mask of each statement in input.batch (as {statement, grant_id}) that
#   a provisioned database role ran, read from the database's own log.
statement_masks := [mask |
	some asked in input.batch
	mask := log.mask with input as {"path": "datavisa/session/statement", "input": asked}
]

# METADATA
# title: Recorded by the engine
# description: |
#   For the drop_decision setting of an OPA the engine asks: the decision-log events of the
#   engine's queries, which the engine has already recorded with their mask, and of its
#   monitor's, which are about the log itself (uploaded back, each would be judged again).
recorded_by_engine if startswith(input.path, "datavisa/logged/")

# The console's views (datavisa.console: the catalogue, an approver's queue) decide
# nothing: the approval a person then makes is asked and recorded again. A queue's event
# carries every pending request (hundreds of KB at 1,000), more than the engine takes of
# an uploaded event: uploaded, it was refused, and every decision batched with it too.
recorded_by_engine if startswith(input.path, "datavisa/console/")

recorded_by_engine if startswith(input.path, "datavisa/monitor/")

# The gateway answer (datavisa.gateway.answer) carries the decision and its mask: the
# engine records it itself, as it does a logged twin's.
recorded_by_engine if startswith(input.path, "datavisa/gateway/answer")

_logged(decision, path) := {"decision": decision, "mask": mask} if {
	mask := log.mask with input as {"path": path, "input": input}
}
