package check

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// KEDA's API module pulls in every scaler's cloud SDK, so the two kinds the
// chart renders are described here: the fields of keda.sh/v1alpha1 that a
// ScaledObject and a TriggerAuthentication may carry (status left out).
// Strict decoding refuses anything else.

type scaledObject struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              scaledObjectSpec `json:"spec"`
}

type scaledObjectSpec struct {
	ScaleTargetRef        *kedaScaleTarget `json:"scaleTargetRef"`
	PollingInterval       *int32           `json:"pollingInterval,omitempty"`
	CooldownPeriod        *int32           `json:"cooldownPeriod,omitempty"`
	InitialCooldownPeriod int32            `json:"initialCooldownPeriod,omitempty"`
	IdleReplicaCount      *int32           `json:"idleReplicaCount,omitempty"`
	MinReplicaCount       *int32           `json:"minReplicaCount,omitempty"`
	MaxReplicaCount       *int32           `json:"maxReplicaCount,omitempty"`
	Advanced              *struct {
		HorizontalPodAutoscalerConfig *struct {
			Name     string                                         `json:"name,omitempty"`
			Behavior *autoscalingv2.HorizontalPodAutoscalerBehavior `json:"behavior,omitempty"`
		} `json:"horizontalPodAutoscalerConfig,omitempty"`
		RestoreToOriginalReplicaCount bool `json:"restoreToOriginalReplicaCount,omitempty"`
		ScalingModifiers              *struct {
			Formula          string                         `json:"formula,omitempty"`
			Target           string                         `json:"target,omitempty"`
			ActivationTarget string                         `json:"activationTarget,omitempty"`
			MetricType       autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
		} `json:"scalingModifiers,omitempty"`
	} `json:"advanced,omitempty"`
	Triggers []kedaTrigger `json:"triggers"`
	Fallback *struct {
		FailureThreshold int32 `json:"failureThreshold"`
		Replicas         int32 `json:"replicas"`
	} `json:"fallback,omitempty"`
}

type kedaScaleTarget struct {
	Name                   string `json:"name"`
	APIVersion             string `json:"apiVersion,omitempty"`
	Kind                   string `json:"kind,omitempty"`
	EnvSourceContainerName string `json:"envSourceContainerName,omitempty"`
}

type kedaTrigger struct {
	Type              string                         `json:"type"`
	Name              string                         `json:"name,omitempty"`
	UseCachedMetrics  bool                           `json:"useCachedMetrics,omitempty"`
	Metadata          map[string]string              `json:"metadata"`
	MetricType        autoscalingv2.MetricTargetType `json:"metricType,omitempty"`
	AuthenticationRef *struct {
		Name string `json:"name"`
		Kind string `json:"kind,omitempty"`
	} `json:"authenticationRef,omitempty"`
}

type triggerAuthentication struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretTargetRef []struct {
			Parameter string `json:"parameter"`
			Name      string `json:"name"`
			Key       string `json:"key"`
		} `json:"secretTargetRef,omitempty"`
		Env []struct {
			Parameter     string `json:"parameter"`
			Name          string `json:"name"`
			ContainerName string `json:"containerName,omitempty"`
		} `json:"env,omitempty"`
	} `json:"spec"`
}

// postgresqlTriggerMetadata and postgresqlAuthParams are the settings KEDA's
// postgresql scaler reads from a trigger's metadata and from a
// TriggerAuthentication.
var (
	postgresqlTriggerMetadata = []string{
		"query", "targetQueryValue", "activationTargetQueryValue", "connectionFromEnv",
		"host", "port", "userName", "dbName", "sslmode", "passwordFromEnv",
	}
	postgresqlAuthParams = []string{"connection", "password", "host", "port", "userName", "dbName", "sslmode"}
)
