package twiliotest

// OperationParams exposes, by Twilio operationId, the form fields the
// stand-in accepts, for the test that holds them to the OpenAPI description.
func OperationParams() map[string][]string {
	return map[string][]string{
		"CreateVerification":      params[opStart],
		"CreateVerificationCheck": params[opCheck],
		"UpdateVerification":      params[opUpdate],
	}
}
